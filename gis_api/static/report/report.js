// The public hazard report page: mark the place on the map (or give the tree's code), send.
// Plain script, no build step; configuration from the page (window.SMARTTREES_REPORT).
"use strict";

(function () {
  const config = window.SMARTTREES_REPORT;
  const form = document.getElementById("report");
  const message = document.getElementById("message");
  const where = document.getElementById("where");
  const lon = document.getElementById("lon");
  const lat = document.getElementById("lat");

  for (const [code, label] of Object.entries(config.hazards)) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = `${label.vi} · ${label.en}`;
    document.getElementById("hazard").append(option);
  }
  const fromQr = new URLSearchParams(window.location.search).get("tree");
  if (fromQr) document.getElementById("tree").value = fromQr;

  const sources = {
    communes: { type: "vector", minzoom: 0, maxzoom: 14,
      tiles: [`${config.base}/collections/communes/tiles/WebMercatorQuad/{z}/{y}/{x}`] },
  };
  const layers = [{ id: "background", type: "background", paint: { "background-color": "#eef1ea" } }];
  if (config.basemapUrl) {
    sources.basemap = { type: "raster", tiles: [config.basemapUrl], tileSize: 256 };
    layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  layers.push({ id: "communes", type: "line", source: "communes", "source-layer": "communes",
    paint: { "line-color": "#7a8a7a", "line-width": 1 } });
  const map = new maplibregl.Map({
    container: "map", style: { version: 8, sources, layers }, center: [105.84, 21.59], zoom: 9,
  });
  window.smarttreesReportMap = map;
  fetch(`${config.base}/map/options.json`).then((r) => r.json()).then((options) => {
    if (options.bounds) map.fitBounds(options.bounds, { padding: 10, animate: false });
  }).catch(() => {});
  const marker = new maplibregl.Marker({ color: "#c0392b" });
  map.on("click", (event) => {
    const { lng, lat: y } = event.lngLat;
    lon.value = lng.toFixed(6);
    lat.value = y.toFixed(6);
    marker.setLngLat([lng, y]).addTo(map);
    where.textContent = `Vị trí · Place: ${lat.value}, ${lon.value}`;
  });

  function show(text, kind) {
    message.textContent = text;
    message.className = kind;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const photo = document.getElementById("photo").files[0];
    if (photo && photo.size > config.photoMb * 1024 * 1024) {
      show(`Ảnh quá lớn: tối đa ${config.photoMb} MiB · The photo is too large: at most ${config.photoMb} MiB`, "error");
      return;
    }
    if (!lon.value && !document.getElementById("tree").value.trim()) {
      show("Hãy chạm vào bản đồ hoặc nhập mã cây · Tap the map or give the tree's code", "error");
      return;
    }
    const data = new FormData(form);
    if (!photo) data.delete("photo");
    const button = document.getElementById("send");
    button.disabled = true;
    try {
      const response = await fetch(`${config.base}/api/care/reports`, { method: "POST", body: data });
      const body = await response.json();
      if (response.ok) {
        show(`Cảm ơn! Mã báo cáo ${body.report_id} · Thank you! Report number ${body.report_id}`, "ok");
        form.reset();
        marker.remove();
        lon.value = lat.value = "";
      } else {
        show(body.description || `Error ${response.status}`, "error");
      }
    } catch (error) {
      show("Không gửi được, hãy thử lại · Could not send; please try again", "error");
    } finally {
      button.disabled = false;
    }
  });
})();
