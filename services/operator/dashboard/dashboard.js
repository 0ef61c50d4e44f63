// xcpay operator dashboard: asks for an API key once (kept in sessionStorage) or takes the one a
// sign-in link gave, polls /dashboard/data with it and renders the figures in the page's language
// (zh-CN or English: the words come in the page's JSON block, never as code). Data is only ever
// written with textContent. Money in yuan (the fen in data-fen), times in Beijing time (UTC+8).
"use strict";

(function () {
  const KEY = "xcpay.dashboard.apiKey";
  const POLL_MS = 3000;
  const $ = (id) => document.getElementById(id);
  const state = { data: null, chart: null, polls: 0, timer: null, errors: 0 };
  window.xcpayDashboard = state; // for operators' consoles and the browser tests
  const STRINGS = (() => {
    try {
      return JSON.parse(document.getElementById("xcpay-strings").textContent);
    } catch (exc) {
      return { lang: "en", words: {}, events: {} };
    }
  })();
  state.lang = STRINGS.lang;
  const T = (en) => (STRINGS.words && STRINGS.words[en]) || en;

  function beijing(seconds) {
    // ISO-8601 in Beijing time, whatever the browser's zone: 2026-11-26T14:47:57+08:00
    return new Date((Number(seconds) + 8 * 3600) * 1000).toISOString().slice(0, 19) + "+08:00";
  }

  function eventLabel(e) {
    return (STRINGS.events && STRINGS.events[e.kind]) || e.contract + "." + e.name;
  }

  function categoryLabel(label) {
    // "5411 grocery" -> "5411 食品杂货" in Chinese
    const space = String(label).indexOf(" ");
    return space < 0 ? label : label.slice(0, space + 1) + T(label.slice(space + 1));
  }

  function yuan(fen) {
    const n = Number(fen);
    const sign = n < 0 ? "-" : "";
    const abs = Math.abs(n);
    const whole = Math.floor(abs / 100).toLocaleString("en-US");
    const cents = String(abs % 100).padStart(2, "0");
    return sign + "¥" + whole + "." + cents;
  }

  function setText(id, value) {
    const el = $(id);
    if (!el) return;
    el.dataset.value = value === null || value === undefined ? "" : String(value);
    el.textContent = value === null || value === undefined ? "–" : String(value);
  }

  function setFen(id, fen) {
    const el = $(id);
    if (!el) return;
    if (fen === null || fen === undefined) {
      el.dataset.fen = "";
      el.textContent = "–";
      return;
    }
    el.dataset.fen = String(fen);
    el.textContent = yuan(fen);
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    if (cls) td.className = cls;
    return td;
  }

  function fenCell(fen) {
    const td = cell(fen === null || fen === undefined ? null : yuan(fen), "num");
    if (fen !== null && fen !== undefined) td.dataset.fen = String(fen);
    return td;
  }

  function fill(tbodyId, rows, build, empty) {
    const body = $(tbodyId);
    const out = [];
    for (const row of rows || []) out.push(build(row));
    if (!out.length) {
      const tr = document.createElement("tr");
      const td = cell(empty || T("none"));
      td.colSpan = body.parentElement.querySelectorAll("thead th").length;
      tr.appendChild(td);
      out.push(tr);
    }
    body.replaceChildren(...out);
  }

  function tr(cells) {
    const row = document.createElement("tr");
    for (const c of cells) row.appendChild(c);
    return row;
  }

  function failed(section) {
    return section && typeof section === "object" && !Array.isArray(section) && "error" in section;
  }

  function short(hex) {
    return hex ? hex.slice(0, 10) + "…" + hex.slice(-6) : "";
  }

  // -- sections ---------------------------------------------------------------------------------

  function renderSystem(d) {
    const t = d.token;
    if (!failed(t)) {
      setFen("supply", t.supply_fen);
      setText("wallets", t.wallets);
      setText("custodial-wallets", t.custodial_wallets);
      setText("paused", t.paused ? T("PAUSED") : T("running"));
      $("paused").className = t.paused ? "bad" : "ok";
    }
    setText("chain-id", d.chain.chain_id);
    setText("latest-block", d.chain.latest_block);
    if (!failed(d.events)) setText("events-total", d.events.total);
    setText("updated", beijing(Date.parse(d.generated_at) / 1000).slice(11));
  }

  function renderPrepaid(p) {
    $("prepaid-card").hidden = p === null;
    if (!p || failed(p)) return;
    setFen("prepaid-deposited", p.deposited_fen);
    setFen("prepaid-held", p.held_fen);
    setFen("prepaid-released", p.released_fen);
    setFen("prepaid-refunded", p.refunded_fen);
    setText("prepaid-packages", p.packages);
    setText("prepaid-merchants", p.merchants);
  }

  function renderCodes(c) {
    if (!c || failed(c)) return;
    setText("codes", c.codes);
    setText("codes-kinds", c.static + " / " + c.dynamic);
    setText("code-payments", c.payments);
    setFen("code-paid", c.paid_fen);
  }

  function renderDisbursements(b) {
    $("disburse-card").hidden = b === null;
    if (!b || failed(b)) return;
    setText("disburse-batches", b.batches);
    setFen("disburse-funded", b.funded_fen);
    setFen("disburse-paid", b.paid_fen);
    setFen("disburse-reclaimed", b.reclaimed_fen);
    setFen("disburse-outstanding", b.outstanding_fen);
    fill("batches", b.latest, (x) => {
      const progress = document.createElement("td");
      const bar = document.createElement("progress");
      bar.max = Math.max(1, x.rows_total);
      bar.value = x.rows_done;
      const label = document.createElement("span");
      label.className = "progress-label";
      label.textContent = x.rows_done + " / " + x.rows_total;
      progress.append(bar, label);
      progress.dataset.done = String(x.rows_done);
      progress.dataset.total = String(x.rows_total);
      const row = tr([
        cell(x.reference),
        cell(x.purpose),
        cell(T(x.status)),
        progress,
        fenCell(x.total_fen),
        fenCell(x.chain ? x.chain.paid_fen : null),
        fenCell(x.chain ? x.chain.exceptions_fen : null),
      ]);
      row.dataset.reference = x.reference;
      return row;
    });
  }

  function renderCollectives(c) {
    $("collective-card").hidden = c === null;
    if (!c || failed(c)) return;
    setText("collectives-count", c.collectives);
    setText("proposals-count", c.proposals);
    setText("assets-count", c.assets);
    setFen("collectives-balance", c.balance_fen);
    const rows = [];
    for (const col of c.latest) {
      for (const line of col.lines) rows.push({ col, line });
    }
    fill("budget-lines", rows, ({ col, line }) => {
      const used = line.budget_fen > 0 ? Math.round((100 * line.spent_fen) / line.budget_fen) + "%" : "–";
      return tr([
        cell("#" + col.id + (col.frozen ? " (" + T("frozen") + ")" : "")),
        cell(col.year),
        cell(line.name),
        fenCell(line.budget_fen),
        fenCell(line.spent_fen),
        fenCell(line.remaining_fen),
        cell(used, "num"),
      ]);
    });
  }

  function renderVouchers(v) {
    $("voucher-card").hidden = v === null;
    if (!v || failed(v)) return;
    setText("voucher-programmes", v.programmes);
    setFen("voucher-held", v.held_fen);
    fill("programmes", v.latest, (p) =>
      tr([
        cell(p.id),
        cell(p.name),
        cell(p.mode),
        cell(p.holders, "num"),
        fenCell(p.budget_fen),
        fenCell(p.granted_fen),
        fenCell(p.spent_fen),
        fenCell(p.returned_fen),
        fenCell(p.outstanding_fen),
      ])
    );
  }

  function renderHardwallet(h) {
    $("hardwallet-card").hidden = h === null;
    if (!h || failed(h)) return;
    setText("hw-cards", h.cards);
    setFen("hw-loaded", h.loaded_fen);
    setFen("hw-settled", h.settled_fen);
    setFen("hw-reserve", h.reserve_fen);
    setFen("hw-shortfall", h.shortfall_fen);
    setText("hw-batches", h.batches);
    setText("hw-payments", h.payments_settled + " / " + h.payments_duplicate + " / " + h.payments_rejected);
    setText("hw-mandates", "mandates" in h ? h.mandates + " / " + h.mandate_pulls : null);
    fill("hw-latest", h.latest_batches, (b) =>
      tr([
        cell(b.block_number),
        cell(b.size, "num"),
        cell(b.settled, "num"),
        cell(b.duplicates, "num"),
        cell(b.rejected, "num"),
        cell(b.shortfalls, "num"),
      ])
    );
  }

  function renderBlocks(blocks) {
    if (failed(blocks)) return;
    fill("blocks", blocks, (b) =>
      tr([
        cell(b.number, "num"),
        cell(beijing(b.timestamp), "mono"),
        cell(b.transactions, "num"),
        cell(short(b.hash), "mono"),
      ])
    );
  }

  function partiesCell(parties) {
    const td = document.createElement("td");
    for (const p of parties || []) {
      const span = document.createElement("span");
      span.className = "party";
      span.dataset.address = p.address;
      span.textContent = T(p.role) + ": " + (p.name || short(p.address));
      if (p.name) {
        const addr = document.createElement("span");
        addr.className = "addr mono";
        addr.textContent = " " + short(p.address);
        span.appendChild(addr);
      }
      td.appendChild(span);
    }
    if (!td.childNodes.length) td.textContent = "–";
    return td;
  }

  function renderEvents(events) {
    if (failed(events)) return;
    fill("events", events.latest, (e) => {
      const kind = cell(eventLabel(e));
      kind.title = e.contract + "." + e.name + " " + e.summary;
      const row = tr([
        cell(beijing(e.timestamp), "mono"),
        kind,
        partiesCell(e.parties),
        fenCell(e.amount_fen),
        cell(e.block_number, "num"),
      ]);
      row.dataset.kind = e.kind;
      row.dataset.tx = e.tx_hash;
      return row;
    });
  }

  function renderChart(s) {
    const note = $("chart-note");
    if (failed(s)) {
      note.textContent = T("could not be read") + ": " + s.error;
      return;
    }
    if (typeof window.Chart === "undefined") {
      note.textContent = T("the chart library is not available; figures in fen") + ": " + JSON.stringify(s);
      return;
    }
    const datasets = [
      {
        label: T("paid to merchants (digital cash)"),
        data: s.merchant_payments_fen.map((f) => f / 100),
        backgroundColor: "#3b7dd8",
      },
    ];
    if (s.voucher_spent_fen) {
      datasets.push({
        label: T("voucher spending"),
        data: s.voucher_spent_fen.map((f) => f / 100),
        backgroundColor: "#e0913a",
      });
    }
    note.textContent = s.voucher_spent_fen
      ? T("Voucher spending per merchant category across programmes, beside all digital cash paid to merchants (yuan).")
      : T("No voucher contract in this deployment: digital cash paid to merchants per category (yuan).");
    const labels = state.lang === "en" ? s.labels : s.labels.map(categoryLabel);
    if (!state.chart) {
      state.chart = new window.Chart($("category-chart"), {
        type: "bar",
        data: { labels, datasets },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          scales: { y: { beginAtZero: true, title: { display: true, text: T("yuan") } } },
          plugins: { legend: { position: "bottom" } },
        },
      });
    } else {
      state.chart.data.labels = labels;
      state.chart.data.datasets = datasets;
      state.chart.update("none");
    }
  }

  function renderErrors(d) {
    const items = [];
    for (const [name, section] of Object.entries(d)) {
      if (failed(section)) {
        const li = document.createElement("li");
        li.textContent = name + ": " + section.error;
        items.push(li);
      }
    }
    $("section-errors").hidden = items.length === 0;
    $("errors").replaceChildren(...items);
  }

  function render(d) {
    renderSystem(d);
    renderChart(d.spending_by_category);
    renderPrepaid(d.prepaid);
    renderCodes(d.payment_codes);
    renderDisbursements(d.disbursements);
    renderCollectives(d.collectives);
    renderVouchers(d.vouchers);
    renderHardwallet(d.hardwallet);
    renderBlocks(d.blocks);
    renderEvents(d.events);
    renderErrors(d);
  }

  // -- connection -------------------------------------------------------------------------------

  function status(text, st) {
    const el = $("status");
    el.textContent = text;
    el.dataset.state = st;
  }

  function showLogin(message) {
    clearTimeout(state.timer);
    state.timer = null;
    $("board").hidden = true;
    $("login").hidden = false;
    $("sign-out").hidden = true;
    const err = $("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    status(T("not connected"), "idle");
  }

  async function poll() {
    const key = sessionStorage.getItem(KEY);
    if (!key) return showLogin("");
    let response;
    try {
      response = await fetch("/dashboard/data", {
        headers: { "X-API-Key": key, "Accept-Language": state.lang === "en" ? "en" : "zh-CN" },
        cache: "no-store",
      });
    } catch (exc) {
      state.errors += 1;
      status(T("offline, retrying"), "error");
      state.timer = setTimeout(poll, POLL_MS);
      return;
    }
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(KEY);
      let detail = "";
      try {
        const problem = await response.json();
        detail = problem.title + (problem.detail ? ": " + problem.detail : "");
      } catch (exc) {
        detail = "HTTP " + response.status;
      }
      return showLogin(T("The key was refused") + " (" + detail + ").");
    }
    if (!response.ok) {
      state.errors += 1;
      status("HTTP " + response.status + ", " + T("retrying"), "error");
      state.timer = setTimeout(poll, POLL_MS);
      return;
    }
    const d = await response.json();
    $("login").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    render(d);
    state.data = d;
    state.polls += 1;
    status(T("live, block") + " " + d.chain.latest_block, "live");
    state.timer = setTimeout(poll, POLL_MS);
  }

  function start() {
    // A sign-in link's page carries a fresh short-lived key: keep it like a typed one, then drop
    // it from the page and the link from the address bar (it is spent anyway).
    const meta = document.querySelector('meta[name="xcpay-session"]');
    if (meta) {
      sessionStorage.setItem(KEY, meta.content);
      meta.remove();
      history.replaceState(null, "", "/dashboard");
    }
    const current = document.getElementById(state.lang === "en" ? "lang-en" : "lang-zh");
    if (current) current.setAttribute("aria-current", "true");
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const key = $("api-key").value.trim();
      $("api-key").value = "";
      if (!key) return;
      sessionStorage.setItem(KEY, key);
      clearTimeout(state.timer);
      poll();
    });
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      if (state.chart) {
        state.chart.destroy();
        state.chart = null;
      }
      state.data = null;
      showLogin("");
    });
    if (sessionStorage.getItem(KEY)) poll();
    else showLogin("");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
