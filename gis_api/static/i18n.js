// The pages' languages: one message catalogue per language (static/i18n/<code>.json).
// The language is the one picked before (kept in localStorage), else the browser's first that
// has a catalogue, else Vietnamese. A missing message falls back to English, then to its key.
"use strict";

window.SmartTreesI18n = (function () {
  const STORED = "smarttrees.lang";

  function choose(available) {
    let stored = null;
    try { stored = localStorage.getItem(STORED); } catch (e) { /* storage disabled */ }
    if (stored && available.includes(stored)) return stored;
    for (const tag of navigator.languages || [navigator.language || ""]) {
      const primary = String(tag).toLowerCase().split("-")[0];
      if (available.includes(primary)) return primary;
    }
    return available.includes("vi") ? "vi" : available[0];
  }

  async function catalogue(folder, code) {
    const response = await fetch(`${folder}/i18n/${code}.json`);
    if (!response.ok) throw new Error(`catalogue ${code}: HTTP ${response.status}`);
    return response.json();
  }

  // Load the catalogue of the language chosen; `folder` is the static folder's URL and
  // `languages` the [{code, name}] the server found.
  async function load(folder, languages) {
    const codes = languages.map((l) => l.code);
    const lang = choose(codes);
    const [messages, english] = await Promise.all([
      catalogue(folder, lang),
      lang !== "en" && codes.includes("en") ? catalogue(folder, "en") : Promise.resolve({}),
    ]);
    const t = (key, values) => {
      let text = messages[key] ?? english[key] ?? key;
      Object.entries(values || {}).forEach(([name, value]) => {
        text = text.split(`{${name}}`).join(String(value));
      });
      return text;
    };
    // Has the catalogue a message for this key (choices without one show their value)?
    const has = (key) => key in messages || key in english;

    // Texts written in the page: data-i18n="key" sets the text, data-i18n-attr="attr:key;..."
    // sets attributes (placeholder, aria-label, title).
    function apply(root) {
      document.documentElement.lang = lang;
      (root || document).querySelectorAll("[data-i18n]").forEach((node) => {
        node.textContent = t(node.dataset.i18n);
      });
      (root || document).querySelectorAll("[data-i18n-attr]").forEach((node) => {
        node.dataset.i18nAttr.split(";").forEach((pair) => {
          const [attr, key] = pair.split(":");
          node.setAttribute(attr, t(key));
        });
      });
    }

    // A <select> offering every language; picking one keeps it and reloads the page (the view
    // is in the URL, so the page opens where it was).
    function picker(select) {
      languages.forEach((l) => select.append(new Option(l.name, l.code, false, l.code === lang)));
      select.addEventListener("change", () => {
        try { localStorage.setItem(STORED, select.value); } catch (e) { /* storage disabled */ }
        location.reload();
      });
    }

    return { lang, t, has, apply, picker };
  }

  // Keep `code` as the language picked (a page that switches without a reload, then loads again).
  function keep(code) {
    try { localStorage.setItem(STORED, code); } catch (e) { /* storage disabled */ }
  }

  return { load, keep };
})();
