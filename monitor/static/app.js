/* fundflow live board: plain JS on the /api/v1 endpoints, no build step.
 * Refreshes every 2 s; on an API error it keeps the last data and shows a stale
 * marker until a refresh succeeds again. A bearer token, when the API asks for
 * one (401), is requested once and kept in this page's memory only. */
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const HISTORY_DAYS = 40;

  // The API has no display names; these are the symbols the simulator and
  // most desks use. Unknown symbols fall back to the symbol itself.
  const NAMES = {
    "09988.HK": "Alibaba", "00700.HK": "Tencent", "03690.HK": "Meituan", "01810.HK": "Xiaomi",
    "00941.HK": "China Mobile", "02318.HK": "Ping An", "01299.HK": "AIA", "00388.HK": "HKEX",
    "09618.HK": "JD.com", "01024.HK": "Kuaishou", "00005.HK": "HSBC", "02800.HK": "Tracker Fund",
    "513770.SH": "HK Internet ETF", "159920.SZ": "Hang Seng ETF", "513180.SH": "Hang Seng Tech ETF",
    "510300.SH": "CSI 300 ETF", "513050.SH": "China Internet 50 ETF", "159941.SZ": "Nasdaq 100 ETF",
  };
  const CURRENCY = { HKD: "HK$", CNY: "CN¥" };
  const COLORS = {
    buy: "#1a7f37", sell: "#c62828", provBuy: "rgba(26,127,55,0.35)", provSell: "rgba(198,40,40,0.35)",
    today: "#0b4f8a", previous: "#8a8f98", grid: "#e3e6ea", text: "#1f2328",
  };

  const $ = (sel, root) => (root || document).querySelector(sel);
  // only touch the DOM when the text changes, so live regions are not re-announced every 2 s
  const setText = (node, text) => { if (node.textContent !== text) node.textContent = text; };
  const name = (s) => NAMES[s] || s;
  const label = (s) => (NAMES[s] ? `${NAMES[s]} ${s}` : s);

  // ---- formatting -----------------------------------------------------------------
  const fullFmt = {};
  function moneyFull(v, cur) {
    if (v === null || v === undefined) return "—";
    if (!fullFmt[cur]) fullFmt[cur] = new Intl.NumberFormat("en-US", { style: "currency", currency: cur });
    return fullFmt[cur].format(v);
  }
  const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const dec2 = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  function compact(v) {
    const a = Math.abs(v);
    const sign = v < 0 ? "-" : "";
    if (a >= 1e9) return sign + dec1(a / 1e9) + "bn";
    if (a >= 1e6) return sign + dec1(a / 1e6) + "M";
    if (a >= 1e4) return sign + dec1(a / 1e3) + "k";
    return sign + int.format(a);
  }
  function dec1(x) { return new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(x); }
  function money(v, cur) {
    if (v === null || v === undefined) return "—";
    return (v < 0 ? "-" : "") + CURRENCY[cur] + compact(Math.abs(v));
  }
  function signedMoney(v, cur) { return v > 0 ? "+" + money(v, cur) : money(v, cur); }
  function pct(r) {
    if (r === null || r === undefined) return "—";
    const p = r * 100;
    return (p > 0 ? "+" : "") + dec2.format(p) + "%";
  }
  function times(r) { return r === null || r === undefined ? "—" : dec2.format(r) + "×"; }
  function rate(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    return v >= 100 ? int.format(v) : new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 }).format(v);
  }
  function hhmm(sec) {
    const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60);
    return String(h).padStart(2, "0") + ":" + String(m).padStart(2, "0");
  }
  function asOfText(iso) {
    if (!iso) return "—";
    const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(iso);
    const off = /([+-]\d{2}:\d{2}|Z)$/.exec(iso);
    return m ? `${m[1]} ${m[2]}${off ? " UTC" + (off[1] === "Z" ? "" : off[1].replace(":00", "")) : ""}` : iso;
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "title" || k === "tabindex" || k === "scope" || k === "value" || k === "role" || k === "id")
        node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }
  function moneyCell(v, cur, signed) {
    return el("td", { class: "num" + (v > 0 ? " pos" : v < 0 ? " neg" : ""), title: moneyFull(v, cur),
      text: signed ? signedMoney(v, cur) : money(v, cur) });
  }

  // ---- API with optional bearer token ----------------------------------------------
  const auth = { token: null, asking: null, declined: false };

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path) {
    for (;;) {
      const used = auth.token;
      const headers = { Accept: "application/json" };
      if (used) headers.Authorization = "Bearer " + used;
      const resp = await fetch(path, { headers, cache: "no-store" });
      if (resp.status === 401) {
        if (auth.token !== used) continue; // the token changed while this request was in flight
        if (auth.declined) throw new ApiError(401, "the API needs a token");
        await askToken(used ? "That token was rejected. Try again." : null);
        continue;
      }
      if (!resp.ok) {
        let msg = resp.statusText;
        try { msg = (await resp.json()).error.message || msg; } catch (e) { /* not JSON */ }
        throw new ApiError(resp.status, `${resp.status} ${msg}`.trim());
      }
      return resp.json();
    }
  }

  function askToken(message) {
    if (auth.asking) return auth.asking;
    const dialog = $("#token-dialog"), input = $("#token-input");
    $("#token-msg").textContent = message ||
      "This fundflow service needs a bearer token. It is kept in this page's memory only.";
    auth.asking = new Promise((resolve, reject) => {
      const done = (token) => {
        auth.asking = null;
        $("#token-form").onsubmit = null;
        $("#token-cancel").onclick = null;
        dialog.oncancel = null;
        if (dialog.open) dialog.close();
        input.value = "";
        if (token) { auth.token = token; auth.declined = false; $("#token-button").hidden = true; resolve(); }
        else { auth.declined = true; $("#token-button").hidden = false; reject(new ApiError(401, "the API needs a token")); }
      };
      $("#token-form").onsubmit = (ev) => { ev.preventDefault(); done(input.value.trim() || null); };
      $("#token-cancel").onclick = () => done(null);
      dialog.oncancel = (ev) => { ev.preventDefault(); done(null); };
      dialog.showModal();
      input.focus();
    });
    return auth.asking;
  }

  $("#token-button").addEventListener("click", () => {
    auth.declined = false;
    askToken(null).then(() => refreshSoon(0), () => {});
  });

  // ---- charts -----------------------------------------------------------------------
  const charts = {};
  const hasCharts = () => typeof window.Chart === "function";
  if (hasCharts()) {
    Chart.defaults.animation = false;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.font.size = 12;
    Chart.defaults.color = COLORS.text;
    Chart.defaults.borderColor = COLORS.grid;
    Chart.defaults.maintainAspectRatio = false;
  }

  function upsertChart(key, canvas, makeConfig, update) {
    if (!hasCharts() || !canvas) return null;
    let chart = charts[key];
    if (!chart) {
      chart = new Chart(canvas, makeConfig());
      charts[key] = chart;
    }
    update(chart);
    chart.update("none");
    return chart;
  }

  // ---- state ------------------------------------------------------------------------
  const state = {
    window: "20d",
    top: 10,
    selected: decodeURIComponent(location.hash.replace(/^#/, "")) || null,
    userSelected: !!location.hash,
    counters: null, // {t, ingested, rejected}
    etfs: [],
    streaks: [],
    flows: [],
    lastOk: null,
    failures: 0,
  };

  // ---- header -----------------------------------------------------------------------
  function renderStatus(st) {
    $("#as-of").textContent = asOfText(st.as_of);
    const markets = $("#markets");
    markets.replaceChildren(...Object.entries(st.market_open || {}).map(([m, open]) =>
      el("span", { class: "pill " + (open ? "open" : "closed"), text: `${m} ${open ? "open" : "closed"}` })));
    const now = performance.now();
    const ev = st.events || {};
    const prev = state.counters;
    if (prev && now > prev.t) {
      const dt = (now - prev.t) / 1000;
      $("#events-rate").textContent = rate(Math.max(0, (ev.ingested - prev.ingested) / dt));
      const rej = Math.max(0, (ev.rejected - prev.rejected) / dt);
      $("#rejected-rate").textContent = rate(rej);
      $("#rejected-rate").classList.toggle("warn", rej > 0);
    }
    $("#events-rate").title = `${int.format(ev.ingested || 0)} ingested, ${int.format(ev.applied || 0)} applied in total`;
    $("#rejected-rate").title = `${int.format(ev.rejected || 0)} rejected in total`;
    state.counters = { t: now, ingested: ev.ingested || 0, rejected: ev.rejected || 0 };
    const lag = st.consumer_lag_messages;
    $("#lag").textContent = lag === null || lag === undefined ? "—" : `${int.format(lag)} msg`;
    const alerts = st.alerts || [];
    const dd = $("#alerts");
    if (!alerts.length) {
      dd.replaceChildren(el("span", { class: "pill ok", text: "none" }));
    } else {
      // pending: the condition holds but not yet for the alert's `for:` duration
      const list = el("ul", { class: "alert-list" }, ...alerts.map((a) =>
        el("li", { text: `${a.alert} ${a.symbol || ""}${a.value !== undefined ? " (" + fmtAlertValue(a) + ")" : ""}`
          + (a.state === "pending" ? " pending" : "") })));
      const firing = alerts.filter((a) => a.state !== "pending").length;
      const pending = alerts.length - firing;
      const text = `${firing} firing` + (pending ? `, ${pending} pending` : "");
      const details = el("details", {}, el("summary", { class: firing ? "pill firing" : "pill", text }), list);
      const wasOpen = dd.querySelector("details")?.open;
      if (wasOpen) details.open = true;
      dd.replaceChildren(details);
    }
  }
  function fmtAlertValue(a) {
    if (/Streak/.test(a.alert)) return `${a.value} days`;
    if (/Inflow|Outflow|Aum/.test(a.alert)) return money(a.value, "CNY");
    return times(a.value);
  }

  // ---- southbound -------------------------------------------------------------------
  function renderTop(doc) {
    const rows = doc.flows || [];
    state.flows = rows;
    const span = { "1d": "today", "5d": "5 days", "20d": "20 days" }[doc.window] || doc.window;
    $("#top-h").textContent = `Top ${rows.length} net buys, ${span}`;
    $("#top-caption").textContent = `Top southbound net buys over ${span}, in HKD`;
    const body = $("#top-table tbody");
    const focused = focusedSymbol(body);
    body.replaceChildren(...rows.map((r, i) => {
      const tr = el("tr", { "data-symbol": r.symbol, tabindex: "0",
        "aria-current": r.symbol === state.selected ? "true" : null },
        el("td", { class: "num", text: String(i + 1) }),
        el("td", { class: "name", text: name(r.symbol) }),
        el("td", { class: "sym", text: r.symbol }),
        moneyCell(r.net_buy_hkd, "HKD"));
      return tr;
    }));
    if (!rows.length) body.replaceChildren(emptyRow(4, "No southbound flows yet."));
    restoreFocus(body, focused);
    const canvas = $("#top-chart");
    canvas.setAttribute("aria-label", `Bar chart of top southbound net buys over ${span}: ` +
      rows.slice(0, 5).map((r) => `${name(r.symbol)} ${money(r.net_buy_hkd, "HKD")}`).join(", "));
    upsertChart("top", canvas, () => ({
      type: "bar",
      data: { labels: [], datasets: [{ label: "Net buy (HKD)", data: [], backgroundColor: [], borderRadius: 2 }] },
      options: {
        indexAxis: "y",
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (ctx) => moneyFull(ctx.raw, "HKD") } },
        },
        scales: {
          x: { ticks: { callback: (v) => money(v, "HKD"), maxRotation: 0, autoSkipPadding: 12 } },
          y: { grid: { display: false } },
        },
        onClick: (_ev, elements, chart) => {
          if (elements.length) select(chart.$symbols[elements[0].index], true);
        },
      },
    }), (chart) => {
      chart.$symbols = rows.map((r) => r.symbol);
      chart.data.labels = rows.map((r) => label(r.symbol));
      chart.data.datasets[0].data = rows.map((r) => r.net_buy_hkd);
      chart.data.datasets[0].backgroundColor = rows.map((r) => (r.net_buy_hkd >= 0 ? COLORS.buy : COLORS.sell));
    });
  }

  function renderStreaks(doc) {
    const rows = (doc.streaks || []).slice().sort((a, b) =>
      Math.abs(b.streak_days) - Math.abs(a.streak_days) || a.symbol.localeCompare(b.symbol));
    state.streaks = rows;
    const body = $("#streak-table tbody");
    const focused = focusedSymbol(body);
    body.replaceChildren(...rows.map((r) => {
      const buy = r.streak_days > 0;
      const prov = r.provisional_net_buy_hkd;
      const provCell = moneyCell(prov, "HKD", true);
      if (prov !== null && prov !== undefined && prov !== 0) {
        const extends_ = (prov > 0) === buy;
        provCell.append(" ", el("span", { class: "prov", text: extends_ ? "extends" : "breaks",
          title: `Today's running net ${prov > 0 ? "buy" : "sell"} would ${extends_ ? "extend" : "break"} the streak if the day closed now` }));
      }
      return el("tr", { "data-symbol": r.symbol, tabindex: "0",
        "aria-current": r.symbol === state.selected ? "true" : null },
        el("td", { class: "name", text: name(r.symbol) }),
        el("td", { class: "sym", text: r.symbol }),
        el("td", { class: "num days", text: String(Math.abs(r.streak_days)) }),
        el("td", { class: buy ? "pos" : "neg", text: buy ? "▲ net buy" : "▼ net sell" }),
        moneyCell(r.streak_net_buy_hkd, "HKD", true),
        provCell);
    }));
    if (!rows.length) body.replaceChildren(emptyRow(6, "No streaks yet: a streak needs one closed trading day."));
    restoreFocus(body, focused);
  }

  function emptyRow(span, text) {
    return el("tr", {}, el("td", { class: "empty", colSpan: span, text }));
  }

  function renderStory() {
    const top = state.flows.slice(0, 3).map((r) => name(r.symbol));
    const longest = state.streaks.find((r) => r.streak_days > 0);
    const parts = [];
    if (longest) {
      parts.push(`${name(longest.symbol)} (${longest.symbol}) has been net-bought ${longest.streak_days} days in a row, ` +
        `${money(longest.streak_net_buy_hkd, "HKD")} in total.`);
    }
    if (top.length) parts.push(`Top ${state.window} net buys: ${top.join(", ")}.`);
    setText($("#story"), parts.join(" "));
  }

  function renderHistory(sym, doc) {
    const days = doc && doc.southbound ? doc.southbound : [];
    const streak = state.streaks.find((r) => r.symbol === sym);
    $("#detail-h").textContent = `${label(sym)}: daily southbound net buy`;
    let summary = "";
    if (streak) {
      const dir = streak.streak_days > 0 ? "net-buy" : "net-sell";
      summary = `${Math.abs(streak.streak_days)}-day ${dir} streak, ${signedMoney(streak.streak_net_buy_hkd, "HKD")} over the streak.`;
      if (streak.provisional_net_buy_hkd !== null && streak.provisional_net_buy_hkd !== undefined)
        summary += ` Today so far (provisional): ${signedMoney(streak.provisional_net_buy_hkd, "HKD")}.`;
    } else {
      summary = "No current streak.";
    }
    setText($("#detail-summary"), summary);
    const closed = days.filter((d) => d.closed);
    const canvas = $("#history-chart");
    canvas.setAttribute("aria-label", `Bar chart of daily southbound net buy for ${name(sym)}, ${days.length} days; ` +
      (closed.length ? `last closed day ${closed[closed.length - 1].date}: ${signedMoney(closed[closed.length - 1].net_buy_hkd, "HKD")}` : "no closed days"));
    upsertChart("history", canvas, () => ({
      type: "bar",
      data: { labels: [], datasets: [{ label: "Net buy (HKD)", data: [], backgroundColor: [], borderColor: [], borderWidth: 1 }] },
      options: {
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: {
            title: (items) => items.length ? items[0].chart.$days[items[0].dataIndex].date +
              (items[0].chart.$days[items[0].dataIndex].closed ? "" : " (provisional)") : "",
            label: (ctx) => moneyFull(ctx.raw, "HKD"),
          } },
        },
        scales: {
          x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true } },
          y: { ticks: { callback: (v) => money(v, "HKD") } },
        },
      },
    }), (chart) => {
      chart.$days = days;
      chart.data.labels = days.map((d) => d.date.slice(5) + (d.closed ? "" : "*"));
      chart.data.datasets[0].data = days.map((d) => d.net_buy_hkd);
      chart.data.datasets[0].backgroundColor = days.map((d) => d.closed
        ? (d.net_buy_hkd >= 0 ? COLORS.buy : COLORS.sell)
        : (d.net_buy_hkd >= 0 ? COLORS.provBuy : COLORS.provSell));
      chart.data.datasets[0].borderColor = days.map((d) => (d.net_buy_hkd >= 0 ? COLORS.buy : COLORS.sell));
    });
  }

  // ---- selection and keyboard -------------------------------------------------------
  function select(sym, byUser) {
    if (!sym) return;
    state.selected = sym;
    if (byUser) {
      state.userSelected = true;
      history.replaceState(null, "", "#" + encodeURIComponent(sym));
    }
    for (const tr of document.querySelectorAll("tr[data-symbol]")) {
      if (tr.dataset.symbol === sym) tr.setAttribute("aria-current", "true");
      else tr.removeAttribute("aria-current");
    }
    if (byUser) refreshSoon(0);
  }
  function focusedSymbol(body) {
    const a = document.activeElement;
    return a && body.contains(a) && a.dataset ? a.dataset.symbol : null;
  }
  function restoreFocus(body, sym) {
    if (!sym) return;
    const row = body.querySelector(`tr[data-symbol="${CSS.escape(sym)}"]`);
    if (row) row.focus({ preventScroll: true });
  }
  for (const id of ["#top-table", "#streak-table"]) {
    const table = $(id);
    table.addEventListener("click", (ev) => {
      const tr = ev.target.closest("tr[data-symbol]");
      if (tr) select(tr.dataset.symbol, true);
    });
    table.addEventListener("keydown", (ev) => {
      const tr = ev.target.closest("tr[data-symbol]");
      if (!tr) return;
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        select(tr.dataset.symbol, true);
      } else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        const next = ev.key === "ArrowDown" ? tr.nextElementSibling : tr.previousElementSibling;
        if (next) next.focus();
      } else if (ev.key === "Home" || ev.key === "End") {
        ev.preventDefault();
        const rows = tr.parentElement.rows;
        if (rows.length) rows[ev.key === "Home" ? 0 : rows.length - 1].focus();
      }
    });
  }
  $("#window").addEventListener("change", (ev) => { state.window = ev.target.value; refreshSoon(0); });

  // ---- ETFs -------------------------------------------------------------------------
  const etfCards = {};
  const ETF_WINDOWS = ["1m", "5m", "15m", "1h", "1d", "5d", "20d"];
  const CREATION_WINDOWS = ["1d", "5d", "20d"];

  function etfCard(sym) {
    if (etfCards[sym]) return etfCards[sym];
    const id = "etf-" + sym.replace(/\W/g, "-");
    const figs = el("dl", { class: "figs" });
    const canvas = el("canvas", { role: "img", "aria-label": `Cumulative turnover of ${sym}, today and previous session` });
    const flows = el("table", { class: "data flows" },
      el("caption", { text: "Net inflow by window (CNY)" }),
      el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Window" }),
        ...ETF_WINDOWS.map((w) => el("th", { scope: "col", class: "num", text: w })))),
      el("tbody"));
    const card = el("article", { class: "panel etf", id, "aria-labelledby": id + "-h", "data-symbol": sym },
      el("div", { class: "panel-head" }, el("h3", { id: id + "-h" }, name(sym) + " ", el("span", { class: "sym", text: sym }))),
      figs,
      el("p", { class: "compare" }),
      el("div", { class: "chart chart-intraday" }, canvas),
      el("p", { class: "legend" }, el("span", { class: "sw sw-today" }), " today ",
        el("span", { class: "sw sw-prev" }), " previous session (same time of day)"),
      el("div", { class: "scroll" }, flows));
    $("#etfs").append(card);
    etfCards[sym] = { card, figs, canvas, flows, compare: card.querySelector(".compare") };
    return etfCards[sym];
  }

  function fig(label, value, title, cls) {
    return el("div", {}, el("dt", { text: label }), el("dd", { text: value, title, class: cls }));
  }

  function curve(points, step) {
    const out = [];
    let last = null;
    for (const [x, y] of points || []) {
      if (last !== null && x - last > 5 * step) out.push({ x: last + step, y: null }); // lunch break
      out.push({ x, y });
      last = x;
    }
    return out;
  }

  function renderEtf(sym, doc, intra) {
    const c = etfCard(sym);
    const e = doc.etf || {};
    const ratio = e.turnover_vs_prev_session_ratio || {};
    const signCls = (v) => (v > 0 ? "pos" : v < 0 ? "neg" : null);
    c.figs.replaceChildren(
      fig("Turnover today", e.turnover_cny === null || e.turnover_cny === undefined ? "—" : "CN¥" + int.format(e.turnover_cny), moneyFull(e.turnover_cny, "CNY")),
      fig("Prev. session, same time", money(e.prev_turnover_same_time_cny, "CNY"), moneyFull(e.prev_turnover_same_time_cny, "CNY")),
      fig("Vs same time", times(ratio.same_time), "today's turnover ÷ previous session's at the same time of day"),
      fig("Prev. session, full day", money(e.prev_turnover_cny, "CNY"), moneyFull(e.prev_turnover_cny, "CNY")),
      fig("Volume ratio", times(e.volume_ratio), "volume per minute so far ÷ average per minute of the previous 5 sessions"),
      fig("Price", e.last_price_cny === null || e.last_price_cny === undefined ? "—" : "CN¥" + e.last_price_cny.toFixed(3), null),
      fig("Change", pct(e.price_change_ratio), "vs previous close", signCls(e.price_change_ratio)),
      ...CREATION_WINDOWS.map((w) => {
        const v = (e.creation_net_inflow_cny || {})[w];
        return fig(`Creation inflow ${w}`, v === null || v === undefined ? "—" : signedMoney(v, "CNY"), moneyFull(v, "CNY") +
          " (Δ shares outstanding × NAV)", signCls(v));
      }),
    );
    const net = e.net_inflow_cny || {};
    const tr = el("tr", {}, el("th", { scope: "row", text: "Active net inflow" }),
      ...ETF_WINDOWS.map((w) => {
        const v = net[w];
        return el("td", { class: "num" + (v > 0 ? " pos" : v < 0 ? " neg" : ""), title: moneyFull(v, "CNY"),
          text: v === null || v === undefined ? "—" : (v > 0 ? "+" : "") + compact(v) });
      }));
    c.flows.tBodies[0].replaceChildren(tr);

    if (intra) {
      const step = intra.step_seconds || 60;
      const today = curve(intra.today && intra.today.cumulative_turnover_cny, step);
      const prev = curve(intra.previous && intra.previous.cumulative_turnover_cny, step);
      const lastToday = today.length ? today[today.length - 1] : null;
      let text = "";
      if (lastToday && lastToday.y !== null) {
        const atSame = prev.filter((p) => p.y !== null && p.x <= lastToday.x).pop();
        text = `By ${hhmm(lastToday.x)}: ${money(lastToday.y, "CNY")} today` +
          (atSame ? ` vs ${money(atSame.y, "CNY")} by the same time on ${intra.previous.date}` : "") + ".";
      }
      setText(c.compare, text);
      const mainland = /\.(SH|SZ)$/.test(sym);
      c.canvas.setAttribute("aria-label", `Line chart of cumulative turnover of ${label(sym)}: ${text || "no trades yet"}`);
      upsertChart("etf:" + sym, c.canvas, () => ({
        type: "line",
        data: { datasets: [
          { label: "Today", data: [], borderColor: COLORS.today, backgroundColor: COLORS.today, borderWidth: 2, pointRadius: 0, spanGaps: false },
          { label: "Previous session", data: [], borderColor: COLORS.previous, backgroundColor: COLORS.previous, borderWidth: 1.5,
            borderDash: [5, 4], pointRadius: 0, spanGaps: false },
        ] },
        options: {
          parsing: false,
          interaction: { mode: "nearest", axis: "x", intersect: false },
          plugins: {
            legend: { display: false },
            tooltip: { callbacks: {
              title: (items) => items.length ? hhmm(items[0].raw.x) : "",
              label: (ctx) => `${ctx.dataset.label}: ${moneyFull(ctx.raw.y, "CNY")}`,
            } },
          },
          scales: {
            x: { type: "linear", min: mainland ? 9.5 * 3600 : undefined, max: mainland ? 15 * 3600 : undefined,
              ticks: { stepSize: 1800, callback: (v) => hhmm(v), maxRotation: 0 } },
            y: { beginAtZero: true, ticks: { callback: (v) => money(v, "CNY") } },
          },
        },
      }), (chart) => {
        chart.data.datasets[0].data = today;
        chart.data.datasets[1].data = prev;
        chart.data.datasets[1].label = `Previous session${intra.previous ? " (" + intra.previous.date + ")" : ""}`;
      });
    }
  }

  // ---- refresh loop -----------------------------------------------------------------
  let timer = null;
  let running = false;
  function refreshSoon(ms) {
    clearTimeout(timer);
    timer = setTimeout(tick, ms === undefined ? REFRESH_MS : ms);
  }
  async function tick() {
    if (running) return refreshSoon();
    running = true;
    try {
      await refresh();
    } catch (err) { // a bug in the board itself: say so, keep polling
      console.error("fundflow board:", err);
      setStale([`board: ${err && err.message}`]);
    } finally {
      running = false;
      refreshSoon();
    }
  }

  async function refresh() {
    const errors = [];
    const guard = (what, p) => p.catch((err) => { errors.push(`${what}: ${err.message}`); return null; });
    const [status, flows, streaks, symbols] = await Promise.all([
      guard("status", api("/api/v1/status")),
      guard("flows", api(`/api/v1/flows?market=HK&window=${encodeURIComponent(state.window)}&top=${state.top}`)),
      guard("streaks", api("/api/v1/streaks?min_days=1")),
      guard("symbols", api("/api/v1/symbols")),
    ]);
    if (status) renderStatus(status);
    else if (flows && flows.as_of) $("#as-of").textContent = asOfText(flows.as_of);
    if (streaks) renderStreaks(streaks);
    if (flows) renderTop(flows);
    if (flows || streaks) renderStory();
    if (symbols) {
      state.etfs = symbols.symbols.filter((s) => s.etf).map((s) => s.symbol).sort();
      state.etfs.forEach(etfCard); // cards in symbol order, whatever order the answers come in
    }

    if (!state.userSelected) {
      const first = state.streaks.find((r) => r.streak_days > 0) || state.streaks[0] || state.flows[0];
      if (first && first.symbol !== state.selected) select(first.symbol, false);
    }
    const sel = state.selected;
    const jobs = [];
    if (sel) {
      const unknown = {}; // 404: no such symbol (say, from an old #link); shown as empty, not an error
      jobs.push(api(`/api/v1/symbols/${encodeURIComponent(sel)}/history?days=${HISTORY_DAYS}`)
        .catch((err) => {
          if (err.status === 404) return unknown;
          errors.push(`history: ${err.message}`);
          return null;
        })
        .then((doc) => { if (doc && sel === state.selected) renderHistory(sel, doc); }));
    }
    for (const sym of state.etfs) {
      const enc = encodeURIComponent(sym);
      jobs.push(guard(sym, api(`/api/v1/symbols/${enc}`)).then(async (doc) => {
        if (!doc) return;
        const e = doc.etf || {};
        let intra = null;
        if (e.turnover_cny != null || e.prev_turnover_cny != null) { // else no trades yet: the API would say 404
          intra = await api(`/api/v1/symbols/${enc}/intraday?step=60`).catch((err) => {
            if (err.status !== 404) errors.push(`${sym} intraday: ${err.message}`);
            return null;
          });
        }
        renderEtf(sym, doc, intra);
      }));
    }
    await Promise.all(jobs);
    setStale(errors);
  }

  function setStale(errors) {
    const stale = $("#stale");
    const now = new Date();
    if (errors.length) {
      state.failures += 1;
      const since = state.lastOk ? `showing data from ${state.lastOk.toLocaleTimeString("en-GB")}` : "no data yet";
      setText(stale, `Stale: the last refresh failed (${errors[0]}${errors.length > 1 ? `, +${errors.length - 1} more` : ""}); ${since}. Retrying every 2 s.`);
      stale.hidden = false;
      document.body.dataset.stale = "true";
    } else {
      state.failures = 0;
      state.lastOk = now;
      stale.hidden = true;
      stale.textContent = "";
      document.body.dataset.stale = "false";
      $("#updated").textContent = `Updated ${now.toLocaleTimeString("en-GB")}`;
    }
  }

  refreshSoon(0);
})();
