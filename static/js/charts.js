/* Charts of the portal, drawn with plotly.js's basic bundle (static/vendor/plotly).
   Data comes from <script type="application/json"> blocks written by the server; no inline code.
   Floats only draw; every hover shows the exact figure the server wrote as text. */
(function () {
  "use strict";

  var DAY = 24 * 3600 * 1000;
  var touch = window.matchMedia && window.matchMedia("(pointer: coarse)").matches;

  function read(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function dark() {
    return !!(window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
  }

  function theme() {
    var d = dark();
    return {
      font: { color: d ? "#e8eaed" : "#14171c", family: "system-ui, sans-serif" },
      grid: d ? "#2b313a" : "#dde1e7",
      line: d ? "#7ab8ff" : "#0b5cad",
      // Inflows in greens and blues, outflows in reds and oranges, each kind its own shade.
      flows: d ? { "in liquidation_profit": "#5ad28f", "in deposit": "#7ab8ff", "in correction": "#9be7b8",
                   "out settlement_coverage": "#ff8a80", "out withdrawal": "#ffb74d", "out correction": "#ffab91" }
               : { "in liquidation_profit": "#0a7a3e", "in deposit": "#0b5cad", "in correction": "#3fa56b",
                   "out settlement_coverage": "#b3261e", "out withdrawal": "#c2571a", "out correction": "#d9534f" },
    };
  }

  // No toolbar on touch screens (it covered the range buttons and steals taps); on a desktop it
  // shows on hover. Zoom stays with the range buttons above each chart, which are plain buttons.
  var config = { responsive: true, displaylogo: false, displayModeBar: touch ? false : "hover",
                 modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"] };

  function base(t, extra) {
    // The site's one number format: a point for decimals, a narrow no-break space for thousands.
    var layout = { paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: t.font, separators: ".\u202f",
                   hoverlabel: { font: { family: "system-ui, sans-serif" } } };
    Object.keys(extra).forEach(function (k) { layout[k] = extra[k]; });
    return layout;
  }

  // The vertical range that fits the points inside [from, to] (with the last point before `from`,
  // whose value holds at `from` on a step line), padded a little; null when nothing is there.
  function fitY(series, from, to) {
    var lo = Infinity, hi = -Infinity, before = null;
    for (var i = 0; i < series.x.length; i++) {
      var t = Date.parse(series.x[i]);
      if (t < from) { before = series.y[i]; continue; }
      if (t > to) break;
      lo = Math.min(lo, series.y[i]); hi = Math.max(hi, series.y[i]);
    }
    if (before !== null) { lo = Math.min(lo, before); hi = Math.max(hi, before); }
    if (lo === Infinity) return null;
    var pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.01 || 1;
    return [lo - pad, hi + pad];
  }

  function balanceChart(node, data) {
    var t = theme();
    var fund = node.getAttribute("data-fund");
    var raw = data[fund] || { x: [], y: [], text: [] };
    var inUsd = node.getAttribute("data-unit") === "usd" && raw.usd;
    var unit = inUsd ? "USD" : fund;
    var series = inUsd ? { x: raw.x, y: raw.usd, text: raw.usd_text } : raw;
    var days = node.getAttribute("data-days") || "all";
    var layout = base(t, {
      margin: { l: 20, r: 16, t: 12, b: 40 }, height: 340, showlegend: false,
      yaxis: { title: { text: unit, standoff: 8 }, gridcolor: t.grid, tickformat: ",~r", automargin: true, fixedrange: touch },
      xaxis: { type: "date", gridcolor: t.grid, fixedrange: touch },
    });
    if (days !== "all" && series.x.length) {
      var last = Math.max(Date.parse(series.x[series.x.length - 1]), Date.now());
      var first = last - Number(days) * DAY;
      layout.xaxis.range = [new Date(first).toISOString(), new Date(last).toISOString()];
      var y = fitY(series, first, last);
      if (y) layout.yaxis.range = y;
    }
    var trace = { x: series.x, y: series.y, text: series.text, type: "scatter", mode: "lines",
                  line: { shape: "hv", color: t.line }, name: fund,
                  hovertemplate: "%{x|%Y-%m-%d %H:00} UTC<br>%{text} " + unit + (inUsd ? " (" + fund + " fund)" : "") + "<extra></extra>" };
    window.Plotly.react(node, [trace], layout, config);
  }

  function flowsChart(node, data) {
    var t = theme();
    var asset = node.getAttribute("data-asset") || "";
    var traces = data.series.map(function (s) {
      var color = t.flows[s.direction + " " + s.kind] || (s.direction === "in" ? t.flows["in correction"] : t.flows["out correction"]);
      return { x: s.x, y: s.y, text: s.text, textposition: "none", name: s.name, type: "bar", marker: { color: color },
               visible: s.hidden ? "legendonly" : true,
               hovertemplate: "%{x|%Y-%m-%d}<br>" + s.name + ": %{text} " + asset + "<extra></extra>" };
    });
    window.Plotly.react(node, traces, base(t, {
      barmode: "relative", height: 360, margin: { l: 20, r: 16, t: 12, b: 40 },
      legend: { orientation: "h", y: -0.18 },
      xaxis: { type: "date", gridcolor: t.grid, fixedrange: touch },
      yaxis: { gridcolor: t.grid, automargin: true, tickformat: ",~r", fixedrange: touch,
               zeroline: true, zerolinecolor: t.font.color },
    }), config);
  }

  function distributionChart(node, data) {
    var t = theme();
    var asset = node.getAttribute("data-asset") || "";
    var hover = data.group > 1 ? "ranks %{x} to %{customdata}: up to %{text} " + asset + "<extra></extra>"
                               : "rank %{x}: %{text} " + asset + "<extra></extra>";
    window.Plotly.react(node, [{ x: data.x, y: data.y, text: data.text, textposition: "none", customdata: data.last,
                                  type: "bar", marker: { color: t.line }, hovertemplate: hover }], base(t, {
      height: 320, margin: { l: 20, r: 16, t: 12, b: 50 },
      xaxis: { title: { text: "Participant rank (1 = largest profit)" }, gridcolor: t.grid, fixedrange: touch },
      yaxis: { title: { text: "Apportioned " + asset }, gridcolor: t.grid, automargin: true, tickformat: ",~r", fixedrange: touch },
    }), config);
  }

  function drawOne(node) {
    var kind = node.getAttribute("data-chart");
    if (kind === "balance") balanceChart(node, read("chart-data") || {});
    else if (kind === "flows") flowsChart(node, read("flows-data"));
    else if (kind === "distribution") distributionChart(node, (read("chart-data") || {}).distribution);
  }

  function draw() {
    document.querySelectorAll("[data-chart]").forEach(drawOne);
  }

  // Buttons in a [data-controls] group set one attribute of the chart they control and redraw
  // it: the fund shown (data-fund), the unit (data-unit: the asset or USD) or the period
  // (data-days, which also fits the vertical axis).
  function wireButtons() {
    document.querySelectorAll("[data-controls]").forEach(function (group) {
      var chart = document.getElementById(group.getAttribute("data-controls"));
      var attribute = group.getAttribute("data-sets");
      var buttons = group.querySelectorAll("button");
      buttons.forEach(function (button) {
        button.addEventListener("click", function () {
          chart.setAttribute(attribute, button.getAttribute("data-value"));
          buttons.forEach(function (b) { b.setAttribute("aria-pressed", b === button ? "true" : "false"); });
          drawOne(chart);
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.Plotly) return;
    draw();
    wireButtons();
    if (window.matchMedia) window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", draw);
  });
})();
