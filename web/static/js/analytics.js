/* Analytics charts (/supervisor/analytics). The figures come from the page's
   <script type="application/json" id="analytics-data"> element (data, never run), so the
   page carries no inline script. Every figure is also in the tables below the charts. */
(function () {
  "use strict";

  var BRAND = "#0b4f6c";
  var ACCENT = "#e0a526";
  var OUTCOME_COLOURS = [
    "#0b4f6c", "#1565c0", "#2e7d32", "#8e24aa", "#f9a825", "#c62828", "#00838f",
    "#6d4c41", "#5e35b1", "#ef6c00", "#546e7a", "#ad1457", "#9e9d24", "#78909c",
  ];

  function figures() {
    var element = document.getElementById("analytics-data");
    if (!element) {
      return null;
    }
    return JSON.parse(element.textContent);
  }

  function chart(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) {
      return null;
    }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    return new window.Chart(canvas, config);
  }

  function draw(data) {
    chart("chart-funnel", {
      type: "bar",
      data: {
        labels: data.funnel.labels,
        datasets: [{ label: "Count", data: data.funnel.values, backgroundColor: BRAND }],
      },
      options: {
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });

    chart("chart-hours", {
      type: "bar",
      data: {
        labels: data.hours.labels,
        datasets: [
          { type: "bar", label: "Calls", data: data.hours.calls, backgroundColor: BRAND, yAxisID: "calls" },
          {
            type: "line", label: "Contact rate (%)", data: data.hours.contactRate,
            borderColor: ACCENT, backgroundColor: ACCENT, yAxisID: "rate", spanGaps: true,
          },
        ],
      },
      options: {
        scales: {
          calls: { type: "linear", position: "left", beginAtZero: true, ticks: { precision: 0 } },
          rate: { type: "linear", position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } },
        },
      },
    });

    chart("chart-states", {
      type: "bar",
      data: {
        labels: data.states.labels,
        datasets: data.states.series.map(function (series) {
          return { label: series.label, data: series.hours, backgroundColor: series.colour };
        }),
      },
      options: {
        indexAxis: "y",
        scales: { x: { stacked: true, beginAtZero: true }, y: { stacked: true } },
      },
    });

    chart("chart-outcomes", {
      type: "doughnut",
      data: {
        labels: data.outcomes.labels,
        datasets: [{
          data: data.outcomes.values,
          backgroundColor: data.outcomes.labels.map(function (_, i) {
            return OUTCOME_COLOURS[i % OUTCOME_COLOURS.length];
          }),
        }],
      },
      options: { plugins: { legend: { position: "right" } } },
    });
  }

  function start() {
    var data = figures();
    if (data && window.Chart) {
      draw(data);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
