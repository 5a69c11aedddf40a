// dingbox UI: theme toggle, opening and reading messages, and live patches from the page's event stream.
"use strict";

(function () {
  const root = document.documentElement;
  const saved = localStorage.getItem("dingbox-theme");
  if (saved === "light" || saved === "dark") root.dataset.theme = saved;

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function toggleTheme() {
    const dark = root.dataset.theme
      ? root.dataset.theme === "dark"
      : window.matchMedia("(prefers-color-scheme: dark)").matches;
    root.dataset.theme = dark ? "light" : "dark";
    localStorage.setItem("dingbox-theme", root.dataset.theme);
  }

  function fragment(html) {
    const t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function flash(el) {
    if (!el) return;
    el.classList.add("flash");
    setTimeout(() => el.classList.remove("flash"), 1500);
  }

  // Apply the server's patches: every HTML fragment was rendered and sanitized by the server.
  function apply(ops) {
    for (const op of ops) {
      const el = document.querySelector(op.sel);
      if (op.op === "remove") {
        if (el) el.remove();
      } else if (op.op === "text") {
        if (el) el.textContent = op.text;
      } else if (op.op === "replace" || (op.op === "prepend" && el)) {
        if (el) {
          const node = fragment(op.html);
          el.replaceWith(node);
          if (node.matches("article.item")) flash(node);
        }
      } else if (op.op === "prepend") {
        const box = document.querySelector(op.into);
        if (!box) continue;
        const empty = document.getElementById("no-messages");
        if (empty) empty.remove();
        const node = fragment(op.html);
        box.prepend(node);
        flash(node);
      }
    }
  }

  function connect(url) {
    const state = document.getElementById("live-state");
    const source = new EventSource(url);
    source.addEventListener("ready", () => {
      document.body.dataset.live = "ready";
      if (state) { state.textContent = "live"; state.className = "live-state on"; }
    });
    source.addEventListener("patch", (e) => apply(JSON.parse(e.data).ops));
    source.addEventListener("reload", () => location.reload());
    source.onerror = () => {
      document.body.dataset.live = "lost";
      if (state) { state.textContent = "reconnecting"; state.className = "live-state off"; }
    };
  }

  // Opening a message reads it: a same-origin POST carrying the CSRF token, never a GET.
  function readOnOpen() {
    const form = document.getElementById("read-form");
    if (!form) return;
    fetch(form.action, {
      method: "POST",
      headers: { "X-CSRF-Token": csrfToken() },
      credentials: "same-origin",
    }).then((r) => (r.ok ? r.json() : null)).then((body) => {
      if (!body || !body.read) return;
      form.remove();
      const item = document.querySelector("#message-detail article.item");
      if (item) {
        item.classList.remove("unread");
        const badge = item.querySelector("[data-state]");
        if (badge) { badge.className = "state read"; badge.textContent = "read"; }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const toggle = document.getElementById("theme-toggle");
    if (toggle) toggle.addEventListener("click", toggleTheme);
    document.addEventListener("click", (e) => {
      const item = e.target.closest("article.item[data-href]");
      if (!item || e.target.closest("a, button, form") || item.closest("#message-detail")) return;
      location.href = item.dataset.href;
    });
    readOnOpen();
    if (document.body.dataset.stream) connect(document.body.dataset.stream);
  });
})();
