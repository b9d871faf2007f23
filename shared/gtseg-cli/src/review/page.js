// The review page: everything comes from the JSON block #data, and every text from the data
// reaches the page through textContent, never as markup.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("data").textContent);
  const PAGE = 50;
  const state = { low: false, worker: "", cls: "", page: 0 };
  const byId = (id) => document.getElementById(id);

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "className") e.className = v;
      else e.setAttribute(k, v);
    }
    e.append(...kids);
    return e;
  }
  const pct = (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(1) + " %");

  // The header: figures over every line of the manifest, computed by gtseg (the rows are
  // only the worst ones): the histogram of agreement, the workers, the legend.
  byId("images").textContent = String(data.images);
  byId("failed-count").textContent = String(data.failed_count);
  byId("shown").textContent = String(data.rows.length);
  byId("title").textContent = "Review of " + data.attribute;
  const bins = data.histogram;
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = byId("histogram");
  const most = Math.max(1, ...bins);
  bins.forEach((n, i) => {
    const h = Math.round((n / most) * 60);
    const rect = document.createElementNS(svgNS, "rect");
    rect.setAttribute("x", String(i * 22));
    rect.setAttribute("y", String(64 - h));
    rect.setAttribute("width", "20");
    rect.setAttribute("height", String(h));
    const title = document.createElementNS(svgNS, "title");
    title.textContent = `${i * 10}–${i * 10 + 10} %: ${n} images`;
    rect.append(title);
    svg.append(rect);
    const label = document.createElementNS(svgNS, "text");
    label.setAttribute("x", String(i * 22));
    label.setAttribute("y", "76");
    label.textContent = String(i * 10);
    svg.append(label);
  });

  const ranking = byId("ranking");
  const workerSelect = byId("worker");
  for (const w of data.workers) {
    ranking.append(el("li", { text: `${w.id}: ${pct(w.mean)} over ${w.images} images` }));
    workerSelect.append(el("option", { value: w.id, text: w.id }));
  }

  const legend = byId("legend");
  const classSelect = byId("class");
  for (const c of data.classes) {
    const swatch = el("span", { className: "swatch" });
    swatch.style.background = c.color;
    legend.append(el("li", {}, swatch, el("span", { text: c.name })));
    if (c.index > 0) classSelect.append(el("option", { value: String(c.index), text: c.name }));
  }
  const className = new Map(data.classes.map((c) => [c.index, c.name]));

  const failed = byId("failed");
  for (const f of data.failed) failed.append(el("li", { text: `${f.id}: ${f.reason}` }));
  if (data.failed_count > data.failed.length) {
    failed.append(el("li", { text: `… and ${data.failed_count - data.failed.length} more` }));
  }

  // The rows: filtered, then one page of them.
  function visible() {
    return data.rows.filter((r) =>
      (!state.low || r.low) &&
      (!state.worker || r.workers.some((w) => w.id === state.worker) ||
        r.excluded.some((x) => x.id === state.worker)) &&
      (!state.cls || r.classes.includes(Number(state.cls))));
  }

  function picture(thumb, full, alt) {
    if (!thumb) return el("span", { text: "–" });
    return el("a", { href: full, target: "_blank" }, el("img", { className: "thumb", src: thumb, alt, loading: "lazy" }));
  }

  function row(r) {
    const tr = el("tr", { className: r.low ? "row low" : "row", "data-agreement": r.agreement === null ? "" : String(r.agreement) });
    // The image by its file name; its full URI (and its id) on hover.
    const facts = el("td", { className: "id" },
      el("div", { className: "name", text: r.name, title: (r.source ?? r.id) + " (id " + r.id + ")" }),
      el("div", { text: "agreement " + pct(r.agreement) }),
      el("div", { text: "confidence " + pct(r.confidence) }),
      el("div", { text: `${r.workers.filter((w) => w.included).length} workers` }),
      el("div", { text: "classes: " + r.classes.map((k) => className.get(k) ?? String(k)).join(", ") }));
    if (r.problem) facts.append(el("div", { className: "excluded", text: r.problem }));
    const people = el("td", {});
    for (const w of r.workers) {
      const bar = el("span", { className: "bar" }, el("span", {}));
      bar.firstChild.style.width = Math.round((w.agreement ?? 0) * 120) + "px";
      people.append(el("div", { className: "worker" }, bar, el("span", { text: `${w.id} ${pct(w.agreement)}` })));
    }
    for (const x of r.excluded) {
      people.append(el("div", { className: "excluded", text: `excluded ${x.id}: ${x.reason}` }));
    }
    tr.append(
      el("td", {}, picture(r.overlay_thumb, r.overlay, "mask over " + r.name)),
      el("td", {}, picture(r.heat_thumb, r.heat, "disagreement over " + r.name)),
      facts,
      people);
    return tr;
  }

  function render() {
    const rows = visible();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    byId("rows").replaceChildren(...rows.slice(state.page * PAGE, (state.page + 1) * PAGE).map(row));
    byId("status").textContent = `${rows.length} of ${data.rows.length} images shown, page ${state.page + 1} of ${pages}`;
    byId("prev").disabled = state.page === 0;
    byId("next").disabled = state.page >= pages - 1;
  }

  byId("low").addEventListener("change", (e) => { state.low = e.target.checked; state.page = 0; render(); });
  workerSelect.addEventListener("change", (e) => { state.worker = e.target.value; state.page = 0; render(); });
  classSelect.addEventListener("change", (e) => { state.cls = e.target.value; state.page = 0; render(); });
  byId("prev").addEventListener("click", () => { state.page -= 1; render(); });
  byId("next").addEventListener("click", () => { state.page += 1; render(); });
  render();
})();
