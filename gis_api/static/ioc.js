// The IOC dashboard: the province summary, a choropleth per indicator, monthly trends.
// Every figure comes from the public API (/api/ioc/summary and the OGC collections); nothing
// is computed here but sums of published figures. Labels are Vietnamese with English beside.
(function () {
  "use strict";

  const config = window.SMARTTREES_IOC;
  const base = config.base;
  const number = new Intl.NumberFormat("vi-VN");

  // Summary figures: [key in the summary, Vietnamese label, English label, how to show it].
  const FIGURES = [
    ["documents.total", "Văn bản", "Documents", "count"],
    ["documents.electronic", "Văn bản điện tử", "Sent electronically", "count"],
    ["documents.courier_cost_saved_vnd", "Chi phí bưu chính tiết kiệm", "Courier cost saved", "vnd"],
    ["citizen_support.people", "Công dân được hỗ trợ", "Citizens supported", "count"],
    ["citizen_support.amount_vnd", "Tiền hỗ trợ", "Support paid", "vnd"],
    ["citizen_support.provinces", "Tỉnh, thành nơi mắc kẹt", "Provinces stranded in", "count"],
    ["trees.total", "Số cây", "Trees", "count"],
    ["trees.progress", "Tiến độ so với chỉ tiêu", "Progress to the target", "share"],
  ];

  // Choropleth indicators: id, labels, and the value of a commune (null: withheld or none).
  const INDICATORS = [
    ["documents_sent", "Văn bản gửi đi", "Documents sent", (c) => sumOf(data.documents, c, "sent")],
    ["courier_saving_vnd", "Chi phí tiết kiệm (đồng)", "Courier cost saved (VND)",
      (c) => sumOf(data.documents, c, "courier_saving_vnd")],
    ["support_people", "Người được hỗ trợ", "People supported",
      (c) => (data.support[c] ? data.support[c].people : null)],
    ["support_vnd", "Tiền hỗ trợ (đồng)", "Support paid (VND)",
      (c) => (data.support[c] ? data.support[c].amount_vnd : null)],
    ["trees", "Số cây", "Trees", (c) => (data.trees[c] ? data.trees[c].trees : null)],
    ["trees_per_km2", "Mật độ cây (cây/km²)", "Trees per km²",
      (c) => (data.trees[c] ? data.trees[c].trees_per_km2 : null)],
    ["progress", "Tiến độ so với chỉ tiêu của xã", "Progress to the commune's target",
      (c) => (data.trees[c] ? data.trees[c].progress : null)],
  ];

  // The target the tree chart is drawn against: the commune's when one is picked (none
  // loaded: no line), else the province's.
  function target() {
    if (!state.commune) return data.summary.trees.target;
    const commune = data.trees[state.commune];
    return commune && commune.target != null ? commune.target : null;
  }

  const data = { summary: null, communes: [], names: {}, documents: [], agencyMonths: [],
                 support: {}, trees: {}, treeMonths: [] };
  const state = { commune: "", indicator: INDICATORS[0][0] };
  const charts = {
    map: echarts.init(document.getElementById("map")),
    documents: echarts.init(document.getElementById("documents-chart")),
    trees: echarts.init(document.getElementById("trees-chart")),
  };

  async function getJSON(path) {
    const response = await fetch(base + path, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  // Every feature of a collection, following the next links.
  async function features(collection, query) {
    let url = `/collections/${collection}/items?limit=10000&f=json${query || ""}`;
    const all = [];
    while (url) {
      const page = await getJSON(url);
      all.push(...page.features);
      const next = (page.links || []).find((l) => l.rel === "next");
      url = next ? next.href.replace(base, "") : null;
    }
    return all;
  }

  function sumOf(rows, commune, field) {
    const mine = rows.filter((r) => r.commune_code === commune);
    return mine.length ? mine.reduce((s, r) => s + r[field], 0) : null;
  }

  function pick(object, key) {
    return key.split(".").reduce((o, k) => (o == null ? o : o[k]), object);
  }

  function show(value, kind) {
    if (value === null || value === undefined) return "ẩn · withheld";
    if (kind === "share") return `${(value * 100).toFixed(1)} %`;
    if (kind === "vnd") return `${number.format(value)} đ`;
    return number.format(value);
  }

  function periodOf(key) {
    const part = key.split(".")[0];
    const period = data.summary[part] && data.summary[part].period;
    if (period && period.from) return `${period.from} – ${period.to}`;
    if (part === "trees") return `${data.summary.trees.target.toLocaleString("vi-VN")} cây · target`;
    return "";
  }

  function drawSummary() {
    const s = data.summary;
    document.getElementById("province").textContent = s.province.name || "";
    const box = document.getElementById("summary");
    box.replaceChildren();
    for (const [key, vi, en, kind] of FIGURES) {
      const value = pick(s, key);
      const definition = s.definitions[key] || s.definitions[key.replace(/\.[^.]*$/, ".total")];
      const div = document.createElement("div");
      div.className = "figure";
      div.dataset.key = key;
      div.dataset.value = value === null ? "" : String(value);
      div.innerHTML = '<div class="label"></div><div class="value"></div>' +
        '<div class="period"></div><div class="definition"></div>';
      div.querySelector(".label").innerHTML = `${vi} <span class="en">${en}</span>`;
      div.querySelector(".value").textContent = show(value, kind);
      div.querySelector(".period").textContent = periodOf(key);
      div.querySelector(".definition").textContent =
        definition ? `${definition.vi} — ${definition.en}` : "";
      box.append(div);
    }
  }

  function indicator() {
    return INDICATORS.find((i) => i[0] === state.indicator);
  }

  function drawMap() {
    const [, vi, en, value] = indicator();
    const rows = data.communes.map((c) => {
      const v = value(c.id);
      return { name: c.id, value: v === null ? NaN : v };
    });
    const values = rows.map((r) => r.value).filter((v) => !Number.isNaN(v));
    charts.map.setOption({
      title: { text: `${vi} · ${en}`, left: 8, top: 4, textStyle: { fontSize: 13 } },
      tooltip: {
        trigger: "item",
        formatter: (p) => `${data.names[p.name] || p.name}: ${
          Number.isNaN(p.value) ? "ẩn · withheld" : number.format(p.value)}`,
      },
      visualMap: { min: values.length ? Math.min(...values) : 0,
                   max: values.length ? Math.max(...values, 1) : 1,
                   left: 8, bottom: 8, calculable: true,
                   inRange: { color: ["#edf8e9", "#74c476", "#005a32"] } },
      series: [{
        id: "communes", type: "map", map: "communes", nameProperty: "code", roam: true,
        selectedMode: "single", data: rows,
        itemStyle: { areaColor: "#d0d0d0", borderColor: "#5f6f5f" },
        emphasis: { label: { show: false } },
        select: { itemStyle: { borderColor: "#c0392b", borderWidth: 2 } },
      }],
    }, { replaceMerge: ["series"] });
  }

  // The monthly rows of the commune picked, or of the whole province added up.
  function documentMonths() {
    const source = state.commune
      ? data.documents.filter((r) => r.commune_code === state.commune)
      : data.agencyMonths;
    const months = {};
    for (const r of source) {
      const m = (months[r.month] = months[r.month] || { sent: 0, received: 0, electronic: 0 });
      m.sent += r.sent;
      m.received += r.received;
      m.electronic += r.sent_electronic;
    }
    return Object.keys(months).sort().map((month) => ({ month, ...months[month] }));
  }

  function treeMonths() {
    const source = state.commune
      ? data.treeMonths.filter((r) => r.commune_code === state.commune)
      : data.treeMonths;
    const months = {};
    for (const r of source) {
      const m = (months[r.month] = months[r.month] || { trees: 0, planted: 0 });
      m.trees += r.trees;
      m.planted += r.planted;
    }
    return Object.keys(months).sort().map((month) => ({ month, ...months[month] }));
  }

  function drawTrends() {
    const where = state.commune ? data.names[state.commune] || state.commune : "Toàn tỉnh";
    const whereEn = state.commune ? "" : " · whole province";
    document.getElementById("trend-title").textContent = `${where}${whereEn}`;
    const docs = documentMonths();
    charts.documents.setOption({
      title: { text: "Văn bản theo tháng · Documents per month", left: 8, textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" },
      legend: { top: 24 },
      grid: { top: 60, left: 60, right: 16, bottom: 28 },
      xAxis: { type: "category", data: docs.map((d) => d.month.slice(0, 7)) },
      yAxis: { type: "value" },
      series: [
        { id: "sent", name: "Gửi · sent", type: "bar", data: docs.map((d) => d.sent) },
        { id: "received", name: "Nhận · received", type: "bar", data: docs.map((d) => d.received) },
        { id: "electronic", name: "Gửi điện tử · sent electronically", type: "line",
          data: docs.map((d) => d.electronic) },
      ],
    }, { replaceMerge: ["series"] });
    const trees = treeMonths();
    charts.trees.setOption({
      title: { text: "Số cây cuối tháng · Trees at each month's end", left: 8,
               textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" },
      legend: { top: 24 },
      grid: { top: 60, left: 70, right: 50, bottom: 28 },
      xAxis: { type: "category", data: trees.map((d) => d.month.slice(0, 7)) },
      yAxis: [{ type: "value", scale: true }, { type: "value" }],
      series: [
        { id: "trees", name: "Số cây · trees", type: "line", data: trees.map((d) => d.trees),
          markLine: target() == null ? { data: [] } : {
            symbol: "none", label: { formatter: "Chỉ tiêu · target {c}" },
            data: [{ yAxis: target(), name: "target" }] } },
        { id: "planted", name: "Trồng mới · planted", type: "bar", yAxisIndex: 1,
          data: trees.map((d) => d.planted) },
      ],
    }, { replaceMerge: ["series"] });
  }

  function select(commune) {
    state.commune = commune;
    document.getElementById("commune").value = commune;
    charts.map.dispatchAction({ type: "unselect", seriesIndex: 0,
                                dataIndex: data.communes.map((_, i) => i) });
    if (commune) charts.map.dispatchAction({ type: "select", seriesIndex: 0, name: commune });
    drawTrends();
  }

  function fillControls() {
    const indicatorSelect = document.getElementById("indicator");
    for (const [id, vi, en] of INDICATORS) indicatorSelect.add(new Option(`${vi} · ${en}`, id));
    indicatorSelect.addEventListener("change", () => {
      state.indicator = indicatorSelect.value;
      drawMap();
    });
    const communeSelect = document.getElementById("commune");
    for (const c of [...data.communes].sort((a, b) => data.names[a.id].localeCompare(data.names[b.id], "vi"))) {
      communeSelect.add(new Option(`${data.names[c.id]} (${c.id})`, c.id));
    }
    communeSelect.addEventListener("change", () => select(communeSelect.value));
    charts.map.on("click", (p) => select(p.name === state.commune ? "" : p.name));
  }

  async function load() {
    const props = (f) => f.properties;
    const [summary, communes, documents, agencyMonths, support, trees, treeMonthRows] =
      await Promise.all([
        getJSON("/api/ioc/summary"),
        features("communes", "&properties=code,name"),
        features("documents_by_commune_month", "&skipGeometry=true"),
        features("documents_by_agency_month", "&skipGeometry=true"),
        features("citizen_support_by_commune", "&skipGeometry=true"),
        features("trees_by_commune", "&skipGeometry=true"),
        features("tree_count_by_month"),
      ]);
    data.summary = summary;
    data.communes = communes;
    for (const c of communes) data.names[c.id] = c.properties.name;
    data.documents = documents.map(props);
    data.agencyMonths = agencyMonths.map(props);
    for (const f of support) data.support[f.id] = f.properties;
    for (const f of trees) data.trees[f.id] = f.properties;
    data.treeMonths = treeMonthRows.map(props);
    echarts.registerMap("communes", { type: "FeatureCollection",
      features: communes.map((c) => ({ type: "Feature", geometry: c.geometry,
                                       properties: { code: c.id, name: c.properties.name } })) });
    drawSummary();
    fillControls();
    drawMap();
    drawTrends();
  }

  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));
  // For tests and for the curious: the charts, what is shown, and when it is ready.
  window.smarttreesIoc = { charts, state, data, select, documentMonths, treeMonths,
                           ready: load().then(() => true) };
})();
