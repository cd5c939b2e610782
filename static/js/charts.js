/* Charts of the portal, drawn with the plotly.js that the plotly package ships.
   Data comes from <script type="application/json"> blocks written by the server; no inline code. */
(function () {
  "use strict";

  function read(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function theme() {
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    return {
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: dark ? "#e8eaed" : "#14171c", family: "system-ui, sans-serif" },
      gridcolor: dark ? "#2b313a" : "#dde1e7",
      line: dark ? "#7ab8ff" : "#0b5cad",
      button: dark ? "#2b313a" : "#eef1f5",
      active: dark ? "#0b5cad" : "#cfe0f5",
    };
  }

  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  function balanceChart(node, data) {
    var t = theme();
    var fund = node.getAttribute("data-fund");
    var series = data[fund] || { x: [], y: [] };
    var layout = {
      paper_bgcolor: t.paper_bgcolor, plot_bgcolor: t.plot_bgcolor, font: t.font,
      margin: { l: 90, r: 20, t: 40, b: 40 }, height: 360,
      yaxis: { title: { text: fund, standoff: 12 }, gridcolor: t.gridcolor, tickformat: ",~r", automargin: true },
      xaxis: {
        type: "date", gridcolor: t.gridcolor,
        rangeselector: {
          bgcolor: t.button, activecolor: t.active, font: { color: t.font.color },
          buttons: [
            { count: 7, label: "7 days", step: "day", stepmode: "backward" },
            { count: 30, label: "30 days", step: "day", stepmode: "backward" },
            { step: "all", label: "All" },
          ],
        },
      },
    };
    var trace = { x: series.x, y: series.y, type: "scatter", mode: "lines", line: { shape: "hv", color: t.line }, name: fund,
                  hovertemplate: "%{x|%Y-%m-%d %H:00} UTC<br>%{y:,} " + fund + "<extra></extra>" };
    window.Plotly.react(node, [trace], layout, config);
  }

  function flowsChart(node, data) {
    var t = theme();
    var traces = data.series.map(function (s) { return { x: s.x, y: s.y, name: s.name, type: "bar" }; });
    window.Plotly.react(node, traces, {
      barmode: "relative", paper_bgcolor: t.paper_bgcolor, plot_bgcolor: t.plot_bgcolor, font: t.font, height: 340,
      margin: { l: 70, r: 20, t: 20, b: 40 }, legend: { orientation: "h" },
      xaxis: { type: "date", gridcolor: t.gridcolor }, yaxis: { gridcolor: t.gridcolor },
    }, config);
  }

  function distributionChart(node, data) {
    var t = theme();
    var hover = data.group > 1 ? "ranks %{x} to %{customdata}: up to %{y:,}<extra></extra>"
                               : "rank %{x}: %{y:,}<extra></extra>";
    window.Plotly.react(node, [{ x: data.x, y: data.y, customdata: data.last, type: "bar", marker: { color: t.line },
                                  hovertemplate: hover }], {
      paper_bgcolor: t.paper_bgcolor, plot_bgcolor: t.plot_bgcolor, font: t.font, height: 320,
      margin: { l: 70, r: 20, t: 20, b: 50 },
      xaxis: { title: { text: "Participant rank (1 = largest profit)" }, gridcolor: t.gridcolor },
      yaxis: { title: { text: "Apportioned" }, gridcolor: t.gridcolor },
    }, config);
  }

  function draw() {
    var charts = read("chart-data") || {};
    document.querySelectorAll("[data-chart]").forEach(function (node) {
      var kind = node.getAttribute("data-chart");
      if (kind === "balance") balanceChart(node, charts);
      else if (kind === "flows") flowsChart(node, read("flows-data"));
      else if (kind === "distribution") distributionChart(node, charts.distribution);
    });
  }

  function wireFundButtons() {
    document.querySelectorAll(".fund-button").forEach(function (button) {
      button.addEventListener("click", function () {
        var node = document.getElementById("balance-chart");
        node.setAttribute("data-fund", button.getAttribute("data-fund"));
        document.querySelectorAll(".fund-button").forEach(function (b) {
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
        balanceChart(node, read("chart-data") || {});
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.Plotly) return;
    draw();
    wireFundButtons();
    if (window.matchMedia) window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", draw);
  });
})();
