/* Tables on phones: each row of a table.phone-cards becomes a card, each cell labelled with its column's
   heading (copied here into data-label, which the stylesheet shows below 44rem). Without this
   script a table scrolls sideways in its focusable frame instead. */
(function () {
  "use strict";

  function label(table) {
    var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.replace(/\s+/g, " ").trim();
    });
    table.querySelectorAll("tbody tr").forEach(function (row) {
      var column = 0;
      Array.prototype.forEach.call(row.children, function (cell) {
        if (!cell.hasAttribute("data-label") && heads[column]) cell.setAttribute("data-label", heads[column]);
        column += cell.colSpan || 1;
      });
    });
    table.classList.add("stacked");
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.phone-cards").forEach(label);
  });
})();
