// TIME Coin node dashboard. Plain browser JavaScript, no framework, no build step.
//
// 1. If the URL carries `#login=CODE` (the one-click link the node prints), drop it from the
//    address bar and history at once, then trade it for a session at POST /dashboard/login.
//    The code is single-use: reloading the page never needs it again, the cookie does.
// 2. Poll GET /dashboard/api/state every 1.5 s (never two requests at once) and render it.
//    Every string from the node goes in through textContent: nothing is parsed as HTML.
// 3. Read the node's event stream (GET /dashboard/api/events, server-sent events) with
//    EventSource and list the newest events; the browser reconnects by itself.
"use strict";

(function () {
  const POLL_MS = 1500;
  /** Poll more slowly while signed out, in case another tab signs in. */
  const SIGNED_OUT_POLL_MS = 5000;
  const STATE_URL = "/dashboard/api/state";
  const EVENTS_URL = "/dashboard/api/events";
  /** Events listed at most; older ones leave the list. */
  const MAX_EVENTS = 30;
  const EVENT_TYPES = ["block", "reorg", "finalized", "tx", "peer", "ban", "masternode", "sync"];
  const LOGIN_URL = "/dashboard/login";
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  let lastOkAt = 0;
  let lastState = null;

  // ---- formatting ------------------------------------------------------------------------

  const fmtInt = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));

  function shortHash(hex, head = 8, tail = 6) {
    if (!hex) return "–";
    return hex.length <= head + tail + 1 ? hex : `${hex.slice(0, head)}…${hex.slice(-tail)}`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${s % 60 ? `${s % 60} s` : ""}`.trim();
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${m % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  const ago = (seconds) => (seconds === null || seconds === undefined ? "never" : `${duration(seconds)} ago`);

  function clockTime(ms) {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, "0");
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  // ---- DOM helpers -----------------------------------------------------------------------

  function el(tag, opts, ...children) {
    const e = document.createElement(tag);
    if (opts) {
      if (opts.cls) e.className = opts.cls;
      if (opts.title) e.title = opts.title;
      if (opts.testid) e.dataset.testid = opts.testid;
      if (opts.data) for (const [k, v] of Object.entries(opts.data)) e.dataset[k] = String(v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function hashCell(hex, head, tail) {
    return el("td", { cls: "mono", title: hex || "" }, shortHash(hex, head, tail));
  }

  function setText(id, text, title) {
    const node = $(id);
    node.textContent = text;
    if (title !== undefined) node.title = title;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // ---- rendering -------------------------------------------------------------------------

  function renderHeader(s) {
    const n = s.node;
    setText("node-name", n.name || "node");
    setText("network", n.network);
    setText("node-id", n.nodeId, n.nodeId);
    document.title = `${n.name ? `${n.name} · ` : ""}${fmtInt(n.height)} · TIME Coin`;
    const badge = $("badge");
    badge.textContent = s.badge.text;
    badge.className = `badge badge-${s.badge.kind}`;
    badge.dataset.state = s.badge.kind;
  }

  function renderStats(s) {
    const n = s.node;
    const height = $("height");
    height.textContent = fmtInt(n.height);
    height.dataset.value = String(n.height);
    setText("tip-age", `tip ${ago((s.now - n.tipTime) / 1000)}`);
    const tip = $("tip");
    tip.textContent = shortHash(n.tip, 8, 6);
    tip.title = n.tip;
    tip.dataset.value = n.tip;

    // The last final block: nothing at or below it can be reorganised away.
    const finalEl = $("final-height");
    if (typeof n.finalHeight === "number") {
      finalEl.textContent = fmtInt(n.finalHeight);
      finalEl.dataset.value = String(n.finalHeight);
      finalEl.title = n.finalHash || "";
      const lag = Math.max(0, n.height - n.finalHeight);
      setText("final-lag", lag === 0 ? "the tip is final" : `${fmtInt(lag)} behind the tip`);
    } else {
      finalEl.textContent = "–";
      delete finalEl.dataset.value;
      setText("final-lag", "not reported");
    }

    const median = s.history.length ? s.history[s.history.length - 1].peerMedian : null;
    if (s.sync && s.sync.syncing) {
      setText("sync-line", `syncing · ${fmtInt(s.sync.behind)} behind`);
    } else if (s.sync) {
      setText("sync-line", `in sync · consensus ${fmtInt(s.sync.consensusheight)}`);
    } else {
      setText("sync-line", median === null ? "no peer heights yet" : `peers' median ${fmtInt(median)}`);
    }

    const peerCount = $("peer-count");
    peerCount.textContent = fmtInt(s.peerCount);
    peerCount.dataset.value = String(s.peerCount);
    const inbound = s.peers.filter((p) => p.inbound).length;
    const mns = s.peers.filter((p) => p.masternode).length;
    const off = n.clockOffsetSeconds;
    const clock =
      off === null || off === undefined
        ? ""
        : ` · clock ${off >= 0 ? "+" : "−"}${Math.abs(off).toFixed(1)} s`;
    setText("peer-split", `${s.peers.length - inbound} out · ${inbound} in · ${mns} masternodes${clock}`);

    setText("active-masternodes", `${fmtInt(n.activeMasternodes)} / ${fmtInt(n.registeredMasternodes)}`);
    setText(
      "mn-sub",
      n.producer ? `${n.producer.reason}` : `not a masternode · min ${n.minMasternodes} to produce`,
      n.producer ? n.producer.reason : "",
    );
    setText("mempool", n.mempoolSize === null || n.mempoolSize === undefined ? "–" : fmtInt(n.mempoolSize));
    setText(
      "uptime",
      n.uptimeSeconds === null || n.uptimeSeconds === undefined
        ? "transactions waiting"
        : `up ${duration(n.uptimeSeconds)}`,
    );
  }

  function renderSync(s) {
    const panel = $("sync-panel");
    const sync = s.sync;
    if (!sync || !sync.syncing) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    const pct = sync.progress === null ? 0 : Math.round(sync.progress * 1000) / 10;
    $("sync-fill").style.width = `${pct}%`;
    const bar = $("sync-progress");
    bar.setAttribute("aria-valuenow", String(pct));
    bar.dataset.value = String(pct);
    const left = sync.blockspersecond > 0 ? ` · ${duration(sync.behind / sync.blockspersecond)} left` : "";
    setText(
      "sync-detail",
      `${fmtInt(sync.height)} / ${fmtInt(sync.targetHeight)} · ${pct}% · ${sync.blockspersecond.toFixed(1)} blocks/s${left}`,
    );
  }

  function niceStep(raw) {
    if (!(raw > 1)) return 1;
    const mag = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  function renderChart(s) {
    const root = $("chart");
    // Draw in the element's own pixels, so text and strokes are never stretched.
    const W = Math.max(300, Math.round(root.clientWidth || 900));
    const H = 220;
    root.setAttribute("viewBox", `0 0 ${W} ${H}`);
    const padL = 58;
    const padR = 14;
    const padT = 12;
    const padB = 26;
    root.replaceChildren();
    const pts = s.history;
    root.dataset.samples = String(pts.length);
    if (pts.length < 2) {
      root.append(
        svg(
          "text",
          { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty-label" },
          "collecting samples…",
        ),
      );
      return;
    }
    const t1 = pts[pts.length - 1].t;
    const span = Math.max(t1 - pts[0].t, s.historyIntervalMs);
    const t0 = t1 - span;
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of pts) {
      lo = Math.min(lo, p.height);
      hi = Math.max(hi, p.height);
      if (p.peerMedian !== null) {
        lo = Math.min(lo, p.peerMedian);
        hi = Math.max(hi, p.peerMedian);
      }
    }
    // Whole-block gridlines at a "nice" step (1, 2, 5, 10, 20, 50, …), four or so of them.
    const step = niceStep((hi - lo) / 4);
    lo = Math.max(0, Math.floor(lo / step) * step);
    hi = Math.max(lo + step, Math.ceil(hi / step) * step);
    if (hi === lo + step && lo >= step) lo -= step;
    const x = (t) => padL + ((t - t0) / span) * (W - padL - padR);
    const y = (h) => padT + (1 - (h - lo) / (hi - lo)) * (H - padT - padB);

    for (let v = lo; v <= hi; v += step) {
      const yy = y(v);
      root.append(svg("line", { x1: padL, x2: W - padR, y1: yy, y2: yy, class: "grid" }));
      root.append(
        svg("text", { x: padL - 8, y: yy + 4, "text-anchor": "end", class: "axis-label" }, fmtInt(v)),
      );
    }
    for (const f of [1, 0.5, 0]) {
      const t = t1 - span * f;
      const secs = Math.round((span * f) / 1000);
      const label = f === 0 ? "now" : secs >= 120 ? `−${Math.round(secs / 60)} min` : `−${secs} s`;
      root.append(
        svg(
          "text",
          {
            x: x(t),
            y: H - 6,
            "text-anchor": f === 1 ? "start" : f === 0 ? "end" : "middle",
            class: "axis-label",
          },
          label,
        ),
      );
    }

    const ours = pts.map((p) => `${x(p.t).toFixed(1)},${y(p.height).toFixed(1)}`);
    const base = y(lo).toFixed(1);
    root.append(
      svg("polygon", {
        points: `${x(pts[0].t).toFixed(1)},${base} ${ours.join(" ")} ${x(t1).toFixed(1)},${base}`,
        class: "ours-area",
      }),
    );
    root.append(svg("polyline", { points: ours.join(" "), class: "ours" }));
    // Peers' median on top (dashed, so where the two agree both stay visible): one polyline
    // per run of samples that had peers.
    let run = [];
    const flush = () => {
      if (run.length > 1) root.append(svg("polyline", { points: run.join(" "), class: "peers" }));
      run = [];
    };
    for (const p of pts) {
      if (p.peerMedian === null) flush();
      else run.push(`${x(p.t).toFixed(1)},${y(p.peerMedian).toFixed(1)}`);
    }
    flush();
  }

  function renderDevnet(s) {
    const panel = $("devnet-panel");
    if (!s.devnet) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    const max = Math.max(1, ...s.devnet.map((d) => d.height));
    const min = Math.min(...s.devnet.map((d) => d.height));
    setText("devnet-sub", `${s.devnet.length} nodes · heights ${fmtInt(min)}–${fmtInt(max)}`);
    const tiles = s.devnet.map((d) => {
      const lag = max - d.height;
      const tile = el(
        "div",
        {
          cls: `devnet-node${lag > 1 ? " lagging" : ""}`,
          testid: "devnet-node",
          data: { name: d.name, height: d.height },
        },
        el("div", { cls: "devnet-name" }, d.name, el("span", { cls: "muted" }, lag > 0 ? `−${lag}` : "tip")),
        el("div", { cls: "devnet-height", testid: "devnet-height" }, fmtInt(d.height)),
        el("div", { cls: "devnet-bar" }, el("div")),
        el(
          "div",
          { cls: "devnet-meta" },
          el("span", { cls: "mono", title: d.tip }, d.tip.slice(0, 8)),
          el("span", null, `${d.peers} peers · ${d.activeMasternodes} mn`),
        ),
      );
      tile.querySelector(".devnet-bar > div").style.width = `${Math.max(2, (d.height / max) * 100)}%`;
      return tile;
    });
    $("devnet").replaceChildren(...tiles);
  }

  function renderPeers(s) {
    const nowSec = s.now / 1000;
    const rows = s.peers.map((p) =>
      el(
        "tr",
        { testid: "peer-row", data: { nodeid: p.nodeid } },
        hashCell(p.nodeid),
        el("td", { cls: "mono" }, p.addr),
        el(
          "td",
          null,
          el(
            "span",
            { cls: `pill ${p.inbound ? "pill-in" : "pill-out"}` },
            p.inbound ? "inbound" : "outbound",
          ),
        ),
        el(
          "td",
          null,
          p.masternode
            ? el("span", { cls: "pill pill-mn" }, "masternode")
            : el("span", { cls: "muted" }, "—"),
        ),
        el("td", { cls: "num" }, fmtInt(p.height)),
        el(
          "td",
          { cls: "num" },
          p.pingtime === null ? "–" : `${(p.pingtime * 1000).toFixed(p.pingtime < 0.01 ? 1 : 0)} ms`,
        ),
        el(
          "td",
          { cls: "num", title: new Date(p.conntime * 1000).toISOString() },
          duration(nowSec - p.conntime),
        ),
      ),
    );
    $("peers").replaceChildren(...rows);
    $("peers-empty").hidden = rows.length > 0;
    setText(
      "peers-sub",
      s.peerCount > s.peers.length
        ? `showing ${s.peers.length} of ${s.peerCount}`
        : `${s.peerCount} connected`,
    );
  }

  function renderMasternodes(s) {
    const nowSec = s.now / 1000;
    const rows = s.masternodes.map((m) =>
      el(
        "tr",
        { testid: "masternode-row", data: { status: m.status } },
        hashCell(m.pubkey),
        el("td", { cls: "mono" }, m.address),
        el("td", null, m.tier),
        el("td", null, el("span", { cls: `pill pill-${m.status}` }, m.status)),
        el("td", { cls: "num" }, m.lastseen === null ? "never" : ago(nowSec - m.lastseen)),
      ),
    );
    $("masternodes").replaceChildren(...rows);
    $("masternodes-empty").hidden = rows.length > 0;
    const active = s.masternodes.filter((m) => m.status === "active").length;
    setText("masternodes-sub", `${active} active of ${s.masternodeCount} registered`);
  }

  /** A main-chain block at or below the last final height is final. */
  function isFinal(s, b) {
    return typeof s.node.finalHeight === "number" && b.height <= s.node.finalHeight;
  }

  function renderBlocks(s) {
    const rows = s.blocks.map((b) =>
      el(
        "tr",
        { testid: "block-row", data: { height: b.height, final: String(isFinal(s, b)) } },
        el(
          "td",
          { cls: "num" },
          fmtInt(b.height),
          isFinal(s, b)
            ? el("span", { cls: "sub final", title: "final: cannot be reorganised away" }, "final")
            : null,
        ),
        hashCell(b.hash, 6, 4),
        b.producer ? hashCell(b.producer, 6, 4) : el("td", { cls: "muted" }, "genesis"),
        el("td", { cls: "num" }, fmtInt(b.txCount)),
        el(
          "td",
          { cls: "num", title: new Date(b.time).toISOString() },
          clockTime(b.time),
          el("span", { cls: "sub" }, ago((s.now - b.time) / 1000)),
        ),
      ),
    );
    $("blocks").replaceChildren(...rows);
    if (s.blocks.length > 1) {
      const first = s.blocks[s.blocks.length - 1];
      const last = s.blocks[0];
      const per = (last.time - first.time) / 1000 / (last.height - first.height || 1);
      setText("blocks-sub", `~${per.toFixed(1)} s per block`);
    } else {
      setText("blocks-sub", "");
    }
  }

  function renderDoctor(s) {
    const panel = $("doctor-panel");
    if (!s.doctor) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    const rows = s.doctor.map((d) =>
      el(
        "tr",
        { testid: "doctor-row", data: { check: d.check, status: d.status } },
        el("td", null, d.check),
        el("td", { cls: `doctor-${d.status.replace("/", "")}` }, d.status),
        el("td", null, d.verdict),
        el("td", { cls: "mono" }, d.suggest || ""),
      ),
    );
    $("doctor").replaceChildren(...rows);
  }

  function render(s) {
    lastState = s;
    $("login-needed").hidden = true;
    document.body.classList.remove("signed-out");
    renderHeader(s);
    renderStats(s);
    renderSync(s);
    renderChart(s);
    renderDevnet(s);
    renderPeers(s);
    renderMasternodes(s);
    renderBlocks(s);
    renderDoctor(s);
    document.body.dataset.ready = "true";
  }

  function showSignedOut(message) {
    $("login-needed").hidden = false;
    document.body.classList.add("signed-out");
    if (message) setText("login-message", message);
    const badge = $("badge");
    badge.textContent = "signed out";
    badge.className = "badge badge-offline";
    badge.dataset.state = "signed-out";
  }

  function tickUpdated() {
    const u = $("updated");
    if (!lastOkAt) return;
    const age = (Date.now() - lastOkAt) / 1000;
    u.textContent = age < 3 ? "live" : `updated ${duration(age)} ago`;
    u.classList.toggle("stale", age >= 6);
    if (age >= 6 && lastState) {
      const badge = $("badge");
      badge.textContent = "node unreachable";
      badge.className = "badge badge-offline";
      badge.dataset.state = "offline";
    }
  }

  // ---- networking ------------------------------------------------------------------------

  async function login(code) {
    try {
      const res = await fetch(LOGIN_URL, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code }),
        credentials: "same-origin",
        cache: "no-store",
      });
      if (res.ok) return null;
      const body = await res.json().catch(() => ({}));
      return body.error || `login refused (HTTP ${res.status})`;
    } catch (err) {
      return `cannot reach the node: ${err.message}`;
    }
  }

  async function poll() {
    let next = POLL_MS;
    try {
      const res = await fetch(STATE_URL, { credentials: "same-origin", cache: "no-store" });
      if (res.status === 401) {
        showSignedOut(null);
        next = SIGNED_OUT_POLL_MS;
      } else if (res.ok) {
        render(await res.json());
        lastOkAt = Date.now();
        openEvents();
      }
    } catch {
      // The node is down or restarting: keep the last picture, mark it stale, retry.
    }
    tickUpdated();
    setTimeout(poll, next);
  }

  // ---- the event stream ------------------------------------------------------------------

  function describeEvent(type, d) {
    switch (type) {
      case "block":
        return `block ${fmtInt(d.height)} ${shortHash(d.hash)} (${d.txs} txs)`;
      case "reorg":
        return `reorg ${d.depth} deep at ${fmtInt(d.fork.height)} → ${shortHash(d.newtip.hash)}`;
      case "finalized":
        return `final ${fmtInt(d.height)} ${shortHash(d.hash)}`;
      case "tx":
        return `tx ${shortHash(d.txid)}`;
      case "peer":
        return d.action === "connect"
          ? `peer connected ${d.addr}`
          : `peer disconnected ${d.addr} (${d.reason})`;
      case "ban":
        return `ban ${d.subject}: ${d.reason}`;
      case "masternode":
        return `masternode ${shortHash(d.operator)} ${d.state}`;
      case "sync":
        return `sync ${d.state} at ${fmtInt(d.height)}`;
      default:
        return type;
    }
  }

  let events = null;
  function openEvents() {
    if (events || typeof EventSource === "undefined") return;
    events = new EventSource(EVENTS_URL, { withCredentials: true });
    events.onopen = () => setText("events-state", "live");
    events.onerror = () => setText("events-state", "reconnecting…");
    for (const type of EVENT_TYPES) {
      events.addEventListener(type, (e) => {
        let data;
        try {
          data = JSON.parse(e.data);
        } catch {
          return;
        }
        const list = $("events");
        const item = el(
          "li",
          { data: { type } },
          el("span", { cls: "muted" }, clockTime(Date.now())),
          " ",
          describeEvent(type, data),
        );
        list.prepend(item);
        while (list.children.length > MAX_EVENTS) list.lastChild.remove();
      });
    }
  }

  async function main() {
    const m = /(?:^#|&)login=([A-Za-z0-9_-]{1,128})/.exec(location.hash);
    if (m) {
      // Forget the code before anything else: it is single-use and must not sit in history.
      history.replaceState(null, "", location.pathname + location.search);
      const error = await login(m[1]);
      if (error) showSignedOut(error);
    }
    setInterval(tickUpdated, 1000);
    await poll();
  }

  void main();
})();
