// parkgate operator console: plain JavaScript, no build step.
// The page loads GET /console/api/state, then follows GET /admin/events
// (Server-Sent Events) and reloads the state when the change log moves.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  let state = null;
  let head = 0; // the change log's latest version seen
  let fed = -1; // the latest change in the feed
  const fedKeys = new Set(); // the gate events, refunds and payment exceptions in the feed
  const gates = new Map(); // id → gate as the stream last said
  let selectedSpot = "";

  // el builds an element; text is set as text, never parsed as HTML.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }

  const pad = (n) => String(n).padStart(2, "0");
  function hhmm(t) {
    if (!t) return "";
    const d = new Date(t);
    return pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function when(t) {
    if (!t) return "";
    const d = new Date(t);
    const today = new Date();
    const same = d.toDateString() === today.toDateString();
    return (same ? "" : d.toLocaleDateString() + " ") + hhmm(t);
  }
  function ago(t) {
    if (!t) return "never";
    const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }

  function toast(msg, bad) {
    const t = $("toast");
    t.textContent = msg;
    t.className = "toast show" + (bad ? " bad" : "");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.className = "toast"; }, 4000);
  }

  async function call(method, url, body) {
    const opt = { method, headers: { "X-CSRF-Token": csrf }, credentials: "same-origin" };
    if (body !== undefined) {
      opt.headers["Content-Type"] = "application/json";
      opt.body = JSON.stringify(body);
    }
    const r = await fetch(url, opt);
    if (r.status === 401) { location.href = "/console/login"; throw new Error("signed out"); }
    let j = null;
    try { j = await r.json(); } catch (e) { /* not JSON */ }
    return { status: r.status, ok: r.ok, body: j };
  }
  const errText = (res) => (res.body && res.body.error && res.body.error.message) || ("HTTP " + res.status);

  // ---- state ----
  let loading = null, again = false;
  async function load() {
    if (loading) { again = true; return loading; }
    loading = (async () => {
      try {
        const res = await call("GET", "/console/api/state");
        if (!res.ok) { toast(errText(res), true); return; }
        state = res.body;
        head = Math.max(head, state.version);
        for (const g of state.gates) gates.set(g.id, g);
        render();
      } finally {
        loading = null;
        if (again) { again = false; load(); }
      }
    })();
    return loading;
  }
  let timer = null;
  function reloadSoon() {
    if (timer) return;
    timer = setTimeout(() => { timer = null; load(); }, 120);
  }

  function render() {
    $("count-free").textContent = state.counts.free;
    $("count-reserved").textContent = state.counts.reserved;
    $("count-taken").textContent = state.counts.taken;
    $("count-noshow").textContent = state.counts.noShowsToday;
    renderTiles();
    renderGates();
    renderExceptions();
    // Gate events, refunds and payment exceptions have no change-log
    // version: each reload adds those the feed lacks (the stream may
    // have brought them first), so one written between the page's load
    // and its stream's start is not lost.
    const first = fed < 0;
    const items = [];
    if (first) {
      fed = state.version;
      for (const c of state.changes) items.push(changeItem(c));
    }
    for (const e of state.gateEvents) items.push(eventItem(e));
    for (const r of state.refunds) items.push(refundItem(r));
    for (const p of state.paymentExceptions) items.push(paymentItem(p));
    items.sort((a, b) => a.t - b.t);
    for (const it of items) addFeed(it, !first);
  }

  // Tiles are updated in place, not rebuilt: a live update must not take
  // the keyboard focus from the tile an operator is on.
  const tiles = new Map(); // spot id → its button
  function renderTiles() {
    const box = $("tiles");
    const keep = new Set();
    let prev = null;
    for (const s of state.spots) {
      keep.add(s.id);
      const r = s.reservationId;
      // The tile has room for one time: when the current window ends,
      // or when the next one starts (the title has both).
      const win = !s.reservedFrom ? "" : s.status === "free" ? "→" + hhmm(s.reservedFrom) : "–" + hhmm(s.reservedUntil);
      const title = "Spot " + s.id + ": " + s.status +
        (r ? "\nreservation " + r + " (" + s.reservationStatus + ")\n" + when(s.reservedFrom) + " – " + when(s.reservedUntil) : "") +
        (s.carId ? "\ncar " + s.carId : "");
      const small = s.carId && s.status === "taken" ? s.carId : (win || s.status);
      let b = tiles.get(s.id);
      const changed = b !== undefined && b.dataset.status !== s.status;
      if (!b) {
        b = el("button", { type: "button", role: "listitem", "data-spot": s.id, onclick: () => selectSpot(s.id),
          onanimationend: (ev) => ev.target.classList.remove("flash") }, el("b", {}, s.id), el("small"));
        tiles.set(s.id, b);
      }
      const base = "tile " + s.status + (s.id === selectedSpot ? " selected" : "");
      // A flash still running goes on through unrelated updates; a new
      // status restarts it.
      b.className = base + (!changed && b.classList.contains("flash") ? " flash" : "");
      if (changed) {
        void b.offsetWidth;
        b.classList.add("flash");
      }
      b.dataset.status = s.status;
      b.title = title;
      b.setAttribute("aria-label", title.replace(/\n/g, ", "));
      b.lastChild.textContent = small;
      // In the spots' order; a button already in place is not moved.
      const want = prev ? prev.nextSibling : box.firstChild;
      if (want !== b) box.insertBefore(b, want);
      prev = b;
    }
    for (const [id, b] of tiles) {
      if (!keep.has(id)) { b.remove(); tiles.delete(id); }
    }
    // Whatever else the box held (nothing, normally) goes.
    while (prev && prev.nextSibling) prev.nextSibling.remove();
  }

  function selectSpot(id) {
    selectedSpot = id;
    $("release-spot").value = id;
    for (const t of document.querySelectorAll(".tile.selected")) t.classList.remove("selected");
    const t = document.querySelector('.tile[data-spot="' + CSS.escape(id) + '"]');
    if (t) t.classList.add("selected");
  }

  function renderGates() {
    const list = [...gates.values()].sort((a, b) => a.id.localeCompare(b.id));
    const box = $("gate-list");
    if (!list.length) { box.replaceChildren(el("p", { class: "empty" }, "No gates known yet.")); }
    else {
      box.replaceChildren(...list.map((g) => {
        const lag = Math.max(0, head - (g.cacheVersion || 0));
        // faults: set by gates that report them; shown when present.
        const faults = Array.isArray(g.faults) ? g.faults : (g.faults ? [g.faults] : []);
        return el("article", { class: "gate" + (g.online ? "" : " offline"), "data-gate": g.id, "data-online": String(g.online) },
          el("header", {}, el("b", {}, g.id + " "), el("span", { class: "role" }, g.role || "role?"),
            el("span", { class: "state" }, g.online ? "ONLINE" : "OFFLINE")),
          el("dl", {},
            el("dt", {}, "last seen"), el("dd", { class: "seen", "data-t": g.lastSeen || "" }, ago(g.lastSeen)),
            el("dt", {}, "barrier"), el("dd", { class: "barrier" }, g.barrier || "–"),
            el("dt", {}, "cache lag"), el("dd", { class: lag > 0 ? "lag" : "" }, lag === 0 ? "up to date" : lag + " behind"),
            el("dt", {}, "outbox"), el("dd", { class: g.outbox > 0 ? "lag" : "" }, String(g.outbox || 0))),
          faults.length ? el("div", { class: "faults" }, "Faults: " + faults.map((f) => typeof f === "string" ? f : (f.code || f.kind || JSON.stringify(f))).join(", ")) : null);
      }));
    }
    const sel = $("open-gate"), cur = sel.value;
    sel.replaceChildren(...list.map((g) => el("option", { value: g.id }, g.id + " (" + (g.role || "?") + (g.online ? "" : ", offline") + ")")));
    if (cur) sel.value = cur;
  }
  setInterval(() => {
    for (const d of document.querySelectorAll(".gate .seen")) d.textContent = ago(d.dataset.t);
  }, 1000);

  // Needs attention: the gates' exceptions and the payment exceptions
  // (disputes, unpaid overstay fees), open ones newest first with a
  // Resolve button, then the latest resolved.
  const money = (amount, currency) => (amount / 100).toFixed(2) + " " + (currency || "").toUpperCase();
  const payKinds = { dispute: "Dispute", overstay_unpaid: "Overstay fee unpaid" };
  function payText(p) {
    const what = p.kind === "dispute" ? money(p.amount, p.currency) + " disputed" : money(p.amount, p.currency) + " owed";
    return what + (p.reason ? " (" + p.reason + ")" : "");
  }
  function gateExc(e) {
    return {
      key: "g:" + e.eventId, t: new Date(e.time).getTime(), resolvedAt: e.resolvedAt,
      li: (extra) => el("li", { class: "exc" + (e.resolvedAt ? " resolved" : ""), "data-event": e.eventId },
        el("div", {}, el("b", {}, e.gateId + ": "), e.note || e.reason || e.kind), ...extra),
      meta: when(e.time) + " · " + e.role + " · " + (e.granted ? "let in/out" : "refused") +
        (e.spotId ? " · spot " + e.spotId : "") + (e.plate || e.carId ? " · " + (e.plate || e.carId) : "") +
        (e.reservationId ? " · " + e.reservationId : ""),
      resolve: () => resolve(e), e,
    };
  }
  function payExc(p) {
    return {
      key: "p:" + p.id, t: new Date(p.createdAt).getTime(), resolvedAt: p.resolvedAt,
      li: (extra) => el("li", { class: "exc pay" + (p.resolvedAt ? " resolved" : ""), "data-payment": p.id },
        el("div", {}, el("b", {}, (payKinds[p.kind] || p.kind) + ": "), payText(p)), ...extra),
      meta: when(p.createdAt) + (p.reservationId ? " · " + p.reservationId : "") + (p.providerRef ? " · " + p.providerRef : ""),
      resolve: () => resolvePayment(p), e: p,
    };
  }
  function renderExceptions() {
    const all = state.exceptions.map(gateExc).concat((state.paymentExceptions || []).map(payExc));
    all.sort((a, b) => b.t - a.t);
    const open = all.filter((x) => !x.resolvedAt);
    const done = all.filter((x) => x.resolvedAt).sort((a, b) => new Date(b.resolvedAt) - new Date(a.resolvedAt)).slice(0, 10);
    const badge = $("att-count");
    badge.textContent = open.length;
    badge.className = "badge" + (open.length ? " hot" : "");
    const box = $("exceptions");
    if (!open.length && !done.length) { box.replaceChildren(el("li", { class: "empty" }, "Nothing needs attention.")); return; }
    box.replaceChildren(...open.map((x) => x.li([el("div", { class: "meta" }, x.meta),
      el("div", { class: "row" }, el("button", { type: "button", class: "small resolve", onclick: x.resolve }, "Resolve…"))])),
    ...done.map((x) => x.li([el("div", { class: "meta" }, "resolved by " + x.e.resolvedBy + " " + when(x.e.resolvedAt) + ": " + x.e.resolution)])));
  }

  // ---- feed ----
  const kinds = {
    "reservation.created": "reserved", "reservation.paid": "paid", "reservation.checked_in": "entered",
    "reservation.check_in_reverted": "entry undone", "reservation.left": "left", "reservation.expired": "expired unpaid",
    "reservation.no_show": "released as no-show", "reservation.cancelled": "cancelled", "payment.declined": "payment declined",
    "gate.opened": "barrier opened remotely", "exception.resolved": "exception resolved",
    "spot.added": "spot added", "spot.retired": "spot retired",
  };
  function changeItem(c) {
    const r = c.reservation;
    const op = c.actor && c.actor.startsWith("operator");
    let text = (kinds[c.kind] || c.kind);
    if (c.spotId) text = "Spot " + c.spotId + " " + text;
    if (c.gateId) text += " at " + c.gateId;
    if (r && r.carId) text += " · " + r.carId;
    if (r && c.kind === "reservation.paid" && r.amount) text += " · " + (r.amount / 100).toFixed(2) + " " + (r.currency || "");
    text += " · by " + c.actor;
    if (c.note) text += " — " + c.note;
    return { t: new Date(c.at).getTime(), at: c.at, text, cls: op ? "op" : (c.kind === "payment.declined" ? "deny" : "") };
  }
  function eventItem(e) {
    let text = e.gateId + ": " + (e.kind === "decision" ? (e.role === "exit" ? "exit " : "entry ") + (e.granted ? "granted" : "denied") : e.kind);
    if (e.reason) text += " (" + e.reason + ")";
    if (e.spotId) text += " · spot " + e.spotId;
    if (e.plate || e.carId) text += " · " + (e.plate || e.carId);
    if (e.outcome === "exception") text += " · needs attention";
    return { key: "g:" + e.eventId, t: new Date(e.time).getTime(), at: e.time, text, cls: e.granted ? "" : "deny" };
  }
  const refundWords = { pending: "refund recorded", succeeded: "refund paid", refused: "refund refused" };
  function refundItem(r) {
    const at = r.finishedAt || r.createdAt;
    let text = (refundWords[r.status] || "refund " + r.status) + " · " + money(r.amount, r.currency) + " (" + r.reason + ") · " + r.reservationId;
    if (r.message) text += " — " + r.message;
    return { key: "r:" + r.reservationId + "/" + r.number + "/" + r.status, t: new Date(at).getTime(), at, text, cls: r.status === "refused" ? "deny" : "" };
  }
  function paymentItem(p) {
    const text = (payKinds[p.kind] || p.kind) + ": " + payText(p) + (p.reservationId ? " · " + p.reservationId : "") + " · needs attention";
    return { key: "p:" + p.id, t: new Date(p.createdAt).getTime(), at: p.createdAt, text, cls: "deny" };
  }
  // addFeed puts an item in the feed once, in time order (newest first).
  function addFeed(it, fresh) {
    if (it.key) {
      if (fedKeys.has(it.key)) return;
      fedKeys.add(it.key);
    }
    const li = el("li", { class: it.cls + (fresh ? " new" : ""), "data-t": String(it.t) }, el("time", { datetime: it.at }, hhmm(it.at)), el("span", {}, it.text));
    const feed = $("feed");
    let after = feed.firstChild;
    while (after && Number(after.dataset.t) > it.t) after = after.nextSibling;
    feed.insertBefore(li, after);
    while (feed.children.length > 200) feed.lastChild.remove();
  }

  // ---- live ----
  function connect() {
    // From the version of the state on the page: nothing in between is
    // missed. Reconnections send Last-Event-ID, which the server prefers.
    const es = new EventSource("/admin/events?after=" + encodeURIComponent(state ? state.version : 0));
    const live = $("live");
    es.onopen = () => { live.textContent = "live"; live.className = "live"; };
    es.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
    es.addEventListener("hello", (m) => {
      head = Math.max(head, JSON.parse(m.data).head);
      // What was written between the state's load and the stream's
      // start (a dispute, a refund) has no change-log entry to bring it:
      // reload once the stream follows.
      load();
    });
    es.addEventListener("change", (m) => {
      const c = JSON.parse(m.data);
      head = Math.max(head, c.version);
      // The first state's feed holds the changes up to its version; the
      // stream adds the later ones, each once.
      if (fed >= 0 && c.version > fed) {
        fed = c.version;
        addFeed(changeItem(c), true);
      }
      reloadSoon();
    });
    es.addEventListener("gate", (m) => {
      const g = JSON.parse(m.data);
      gates.set(g.id, g);
      if (state) renderGates();
    });
    es.addEventListener("gate_event", (m) => {
      const e = JSON.parse(m.data);
      addFeed(eventItem(e), true);
      if (e.outcome === "exception") reloadSoon();
    });
    es.addEventListener("refund", (m) => { addFeed(refundItem(JSON.parse(m.data)), true); });
    es.addEventListener("payment_exception", (m) => {
      const p = JSON.parse(m.data);
      // A resolution is in the feed as its change-log entry already.
      if (!p.resolvedAt) addFeed(paymentItem(p), true);
      reloadSoon();
    });
    es.addEventListener("logout", () => { location.href = "/console/login"; });
  }

  // ---- actions ----
  // confirm asks for a confirmation and a reason; resolves to the reason
  // or null.
  function confirmAction(text, label, button) {
    return new Promise((resolve) => {
      const d = $("confirm"), reason = $("confirm-reason");
      $("confirm-text").textContent = text;
      $("confirm-label").textContent = label || "Reason (recorded with your name)";
      $("confirm-yes").textContent = button || "Confirm";
      $("confirm-error").textContent = "";
      reason.value = "";
      const done = (v) => { d.close(); cleanup(); resolve(v); };
      const onSubmit = (ev) => {
        ev.preventDefault();
        const v = reason.value.trim();
        if (!v) { $("confirm-error").textContent = "Please give a reason."; reason.focus(); return; }
        done(v);
      };
      const onNo = () => done(null);
      const onCancel = (ev) => { ev.preventDefault(); done(null); };
      function cleanup() {
        $("confirm-form").removeEventListener("submit", onSubmit);
        $("confirm-no").removeEventListener("click", onNo);
        d.removeEventListener("cancel", onCancel);
      }
      $("confirm-form").addEventListener("submit", onSubmit);
      $("confirm-no").addEventListener("click", onNo);
      d.addEventListener("cancel", onCancel);
      d.showModal();
      reason.focus();
    });
  }

  async function act(text, url, button) {
    const reason = await confirmAction(text, null, button);
    if (reason === null) return null;
    const res = await call("POST", url, { reason });
    if (!res.ok) { toast(errText(res), true); return null; }
    reloadSoon();
    return res;
  }

  $("f-open").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const id = $("open-gate").value;
    if (!id) return;
    const res = await act("Open the barrier of gate " + id + " now?", "/console/api/gates/" + encodeURIComponent(id) + "/open", "Open barrier");
    if (res) toast("Gate " + id + " opened.");
  });
  $("f-release").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const id = $("release-spot").value.trim();
    const res = await act("Release spot " + id + " now? A car inside is checked out; a paid reservation not yet used is released as a no-show.",
      "/console/api/spots/" + encodeURIComponent(id) + "/release", "Release spot");
    if (res) toast("Spot " + id + " is " + res.body.status + ".");
  });
  $("f-cancel").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const id = $("cancel-id").value.trim();
    const res = await act("Cancel reservation " + id + "?", "/console/api/reservations/" + encodeURIComponent(id) + "/cancel", "Cancel reservation");
    if (res) toast("Reservation " + id + " cancelled.");
  });
  async function resolve(e) {
    const note = await confirmAction("Resolve the exception at " + e.gateId + ": " + (e.note || e.reason || e.kind) + "?",
      "Note: how it was resolved (recorded with your name)", "Resolve");
    if (note === null) return;
    const res = await call("POST", "/console/api/exceptions/" + encodeURIComponent(e.eventId) + "/resolve", { reason: note });
    if (!res.ok) { toast(errText(res), true); return; }
    toast("Exception resolved.");
    load();
  }

  async function resolvePayment(p) {
    const note = await confirmAction("Resolve the " + (payKinds[p.kind] || p.kind).toLowerCase() + ": " + payText(p) +
      (p.reservationId ? ", reservation " + p.reservationId : "") + "?", "Note: how it was resolved (recorded with your name)", "Resolve");
    if (note === null) return;
    const res = await call("POST", "/console/api/payment-exceptions/" + encodeURIComponent(p.id) + "/resolve", { reason: note });
    if (!res.ok) { toast(errText(res), true); return; }
    toast("Exception resolved.");
    load();
  }

  $("f-lookup").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = $("lookup-q").value.trim();
    const res = await call("GET", "/console/api/lookup?q=" + encodeURIComponent(q));
    const out = $("lookup-out");
    if (!res.ok) { out.replaceChildren(el("p", { class: "error" }, errText(res))); return; }
    if (!res.body.length) { out.replaceChildren(el("p", { class: "hint" }, "Nothing found for " + q + ".")); return; }
    const money = (a, cur) => (a / 100).toFixed(2) + " " + (cur || "");
    out.replaceChildren(...res.body.map((f) => {
      const r = f.reservation;
      return el("div", { class: "res" },
        el("div", {}, el("b", {}, r.reservationId), " · spot " + r.spotId + " · " + r.status + (r.carId ? " · " + r.carId : "")),
        el("div", { class: "hint" }, when(r.reservedFrom) + " – " + when(r.reservedUntil) + " · " + money(r.amount, r.currency)),
        f.attempts.length ? el("table", {}, el("tr", {}, el("th", {}, "payment"), el("th", {}, "outcome"), el("th", {}, "amount"), el("th", {}, "at")),
          ...f.attempts.map((a) => el("tr", {}, el("td", {}, "#" + a.number), el("td", {}, a.outcome + (a.message ? " (" + a.message + ")" : "")),
            el("td", {}, money(a.amount, a.currency)), el("td", {}, when(a.startedAt))))) : el("div", { class: "hint" }, "no payments"),
        f.refunds.length ? el("table", {}, el("tr", {}, el("th", {}, "refund"), el("th", {}, "status"), el("th", {}, "amount"), el("th", {}, "reason")),
          ...f.refunds.map((x) => el("tr", {}, el("td", {}, "#" + x.number), el("td", {}, x.status), el("td", {}, money(x.amount, x.currency)),
            el("td", {}, x.reason)))) : el("div", { class: "hint" }, "no refunds"),
        el("div", { class: "row" }, el("button", { type: "button", class: "small secondary", onclick: () => { $("cancel-id").value = r.reservationId; $("cancel-id").focus(); } }, "Cancel this…")));
    }));
  });

  // CSV: preview first; pushing is enabled only by a clean preview of the
  // same text.
  let previewed = null;
  $("csv-file").addEventListener("change", async () => {
    const f = $("csv-file").files[0];
    if (f) { $("csv-text").value = await f.text(); previewed = null; $("csv-push").disabled = true; }
  });
  $("csv-text").addEventListener("input", () => { previewed = null; $("csv-push").disabled = true; });
  function showCSV(res) {
    const out = $("csv-out");
    const b = res.body || {};
    if (!b.rows) { out.replaceChildren(el("p", { class: "summary error" }, errText(res))); return; }
    const bad = b.rows.filter((r) => r.error).length;
    const summary = b.pushed ? b.pushed + " reservations pushed." :
      b.ok ? b.rows.length + " lines look right. Push them?" : (b.error || (bad + " lines are wrong; nothing was pushed."));
    out.replaceChildren(el("p", { class: "summary " + (b.ok ? "ok" : "error") }, summary),
      el("table", {}, el("tr", {}, ...["line", "spot", "from", "until", "car", "reference", "problem"].map((h) => el("th", {}, h))),
        ...b.rows.map((r) => el("tr", { class: r.error ? "bad" : "", "data-line": r.line },
          el("td", {}, r.line), el("td", {}, r.spotId), el("td", {}, r.reservedFrom), el("td", {}, r.reservedUntil),
          el("td", {}, r.carId || ""), el("td", {}, r.reference || ""), el("td", {}, r.error || "")))));
  }
  $("csv-preview").addEventListener("click", async () => {
    const text = $("csv-text").value;
    const res = await call("POST", "/console/api/csv/preview", { lines: text.split(/\r?\n/), reason: "" });
    showCSV(res);
    previewed = res.ok && res.body && res.body.ok ? text : null;
    $("csv-push").disabled = previewed === null;
  });
  $("f-csv").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("csv-text").value;
    if (previewed !== text) return;
    const reason = await confirmAction("Push " + (text.trim().split("\n").length - 1) + " reservations? All or none are created.", null, "Push");
    if (reason === null) return;
    const res = await call("POST", "/console/api/csv/push", { lines: text.split(/\r?\n/), reason });
    showCSV(res);
    $("csv-push").disabled = true;
    previewed = null;
    if (res.ok) { toast(res.body.pushed + " reservations pushed."); reloadSoon(); }
  });

  load().then(connect);
})();
