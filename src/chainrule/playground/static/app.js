// chainrule playground: the page. It draws what the server's chainrule session computes and
// sends: no network maths happens here. Plain JavaScript, no build step, no dependencies.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const NEG = [245, 147, 34];   // class 0, y = -1, negative weights
  const POS = [8, 119, 189];    // class 1, y = +1, positive weights
  const MID = [232, 234, 235];
  const CLASS = [NEG, POS, [52, 168, 83]];
  const LR = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
  const L2 = [0, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1];
  const PLAY_ICON = '<svg viewBox="0 0 24 24" width="22" height="22"><path d="M7 4l13 8-13 8z" ' +
    'fill="currentColor"/></svg>';
  const PAUSE_ICON = '<svg viewBox="0 0 24 24" width="22" height="22"><path d="M6 4h4v16H6zM14 ' +
    '4h4v16h-4z" fill="currentColor"/></svg>';
  const DATASET_LABEL = {gaussians: "two gaussians"};
  const ACT_LABEL = {tanh: "tanh", relu: "ReLU", sigmoid: "sigmoid", leaky_relu: "leaky ReLU"};
  const OUT_LABEL = {tanh: "tanh", identity: "linear", same: "θ (as the lecture)"};
  const OPT_LABEL = {sgd: "SGD", momentum: "SGD + momentum 0.9", adam: "Adam",
                     rmsprop: "RMSprop", adagrad: "Adagrad"};

  const app = {
    options: null, sid: null, state: null, config: null, ws: null, playing: false,
    history: [], frame: null, selected: null, explainBusy: false, explainAgain: false,
    lastExplain: 0, nodes: [], edges: [], wsReady: null, busy: false, openGrads: new Set(),
  };
  window.playground = app;

  // ------------------------------------------------------------------ helpers
  function showMessage(text) {
    const m = $("message");
    if (!text) { m.hidden = true; m.textContent = ""; return; }
    m.textContent = text;
    m.hidden = false;
  }

  async function api(method, path, body) {
    const init = {method, headers: {}};
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const err = new Error((data && data.error) || (r.status + " " + r.statusText));
      err.status = r.status;
      throw err;
    }
    return data;
  }

  function decode(b64) {
    const s = atob(b64);
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }

  function decodeFloats(b64) {
    return new Float32Array(decode(b64).buffer);
  }

  function mix(a, b, t) {
    return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
  }

  // byte 0..255 for [-1, 1] -> colour orange .. white .. blue
  function signedColour(byte, discrete) {
    let v = byte / 127.5 - 1;
    if (discrete) v = v > 0 ? 1 : (v < 0 ? -1 : 0);
    return v >= 0 ? mix(MID, POS, v) : mix(MID, NEG, -v);
  }

  function pictureToCanvas(canvas, bytes, n, discrete) {
    canvas.width = n; canvas.height = n;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(n, n);
    for (let i = 0; i < n * n; i++) {
      const c = signedColour(bytes[i], discrete);
      img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2];
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function fmtLoss(v) {
    return v === null || v === undefined ? "–" : v.toFixed(3);
  }

  function fmtEpoch(e) {
    const s = String(Math.floor(e + 1e-9)).padStart(6, "0");
    return s.slice(0, s.length - 3) + "," + s.slice(s.length - 3);
  }

  // ------------------------------------------------------------------ controls
  function fillSelect(id, values, labels) {
    const sel = $(id);
    sel.innerHTML = "";
    for (const v of values) {
      const o = document.createElement("option");
      o.value = String(v);
      o.textContent = labels ? (labels[v] || String(v)) : String(v);
      sel.appendChild(o);
    }
  }

  function buildControls() {
    const o = app.options;
    fillSelect("learning_rate", LR);
    fillSelect("l2", L2);
    fillSelect("activation", o.activations, ACT_LABEL);
    fillSelect("output_activation", o.output_activations, OUT_LABEL);
    fillSelect("optimizer", o.optimizers, OPT_LABEL);
    const box = $("datasets");
    for (const name of o.datasets) {
      const b = document.createElement("button");
      b.className = "dataset";
      b.dataset.dataset = name;
      b.id = "dataset-" + name;
      b.textContent = DATASET_LABEL[name] || name;
      b.addEventListener("click", () => configure({dataset: name}));
      box.appendChild(b);
    }
    for (const id of ["learning_rate", "l2"]) {
      $(id).addEventListener("change", (ev) => configure({[id]: parseFloat(ev.target.value)}));
    }
    for (const id of ["activation", "output_activation", "loss", "optimizer"]) {
      $(id).addEventListener("change", (ev) => configure({[id]: ev.target.value}));
    }
    $("batch_size").addEventListener("change", (ev) =>
      configure({batch_size: parseInt(ev.target.value, 10)}));
    $("points").addEventListener("change", (ev) =>
      configure({points: parseInt(ev.target.value, 10)}));
    $("noise").addEventListener("input", (ev) => { $("noise-value").textContent = ev.target.value; });
    $("noise").addEventListener("change", (ev) => configure({noise: parseFloat(ev.target.value)}));
    $("train_ratio").addEventListener("input", (ev) => {
      $("ratio-value").textContent = Math.round(ev.target.value * 100) + "%"; });
    $("train_ratio").addEventListener("change", (ev) =>
      configure({train_ratio: parseFloat(ev.target.value)}));
    $("regenerate").addEventListener("click", () => configure((c) => ({seed: c.seed + 1})));
    $("add-layer").addEventListener("click", () => configure((c) => {
      if (c.hidden.length >= app.options.max_hidden_layers) return null;
      return {hidden: [...c.hidden, 2]};
    }));
    $("remove-layer").addEventListener("click", () => configure((c) => {
      if (!c.hidden.length) return null;
      return {hidden: c.hidden.slice(0, -1)};
    }));
    $("play").addEventListener("click", () => send({cmd: app.playing ? "pause" : "play"}));
    $("step").addEventListener("click", () => send({cmd: "step"}));
    $("reset").addEventListener("click", () => send({cmd: "reset"}));
    $("lecture").addEventListener("click", () => {
      history.replaceState(null, "", "?preset=lecture");
      configure({preset: "lecture"});
    });
    $("show-test").addEventListener("change", drawRegions);
    $("discretize").addEventListener("change", () => { drawRegions(); drawUnits(); });
    $("regions").addEventListener("click", onRegionsClick);
  }

  function syncControls() {
    const c = app.config;
    const setSel = (id, v) => {
      const sel = $(id);
      if (![...sel.options].some((o) => parseFloat(o.value) === v || o.value === String(v))) {
        const o = document.createElement("option");
        o.value = String(v); o.textContent = String(v);
        sel.appendChild(o);
      }
      for (const o of sel.options) {
        if (o.value === String(v) || parseFloat(o.value) === v) { sel.value = o.value; break; }
      }
    };
    setSel("learning_rate", c.learning_rate);
    setSel("l2", c.l2);
    setSel("activation", c.activation);
    setSel("output_activation", c.output_activation);
    setSel("loss", c.loss);
    setSel("optimizer", c.optimizer);
    setSel("points", c.points);
    $("batch_size").value = c.batch_size;
    $("noise").value = c.noise; $("noise-value").textContent = c.noise;
    $("train_ratio").value = c.train_ratio;
    $("ratio-value").textContent = Math.round(c.train_ratio * 100) + "%";
    $("seed").textContent = c.seed;
    $("output_activation").disabled = c.loss !== "square";
    const lectureSet = c.dataset === "lecture";
    for (const id of ["noise", "train_ratio", "points", "regenerate", "add-layer",
                      "remove-layer", "loss", "batch_size"]) {
      $(id).disabled = lectureSet;
    }
    for (const b of document.querySelectorAll("button.dataset")) {
      b.classList.toggle("selected", b.dataset.dataset === c.dataset);
    }
    $("lecture").classList.toggle("selected", lectureSet);
    const n = c.hidden.length;
    $("layer-count").textContent = n + (n === 1 ? " hidden layer" : " hidden layers");
    $("region-note").textContent = lectureSet
      ? "The lecture's example x = (1.5, -1, 1.3): the picture is the plane x₃ = 1.3."
      : (c.loss === "square" ? "Colour: h(x) (blue +1, orange −1); class: sign(h(x))."
        : "Colour: the softmax class probabilities; class: argmax.");
  }

  // ------------------------------------------------------------------ configuration
  // Changes run one after another; a function is evaluated against the config of its turn,
  // so quick clicks (add a unit, add a unit) all count.
  function configure(change) {
    app.queue = (app.queue || Promise.resolve()).then(() =>
      runConfigure(typeof change === "function" ? change(app.config) : change));
    return app.queue;
  }

  async function runConfigure(change) {
    if (!change) return;
    app.busy = true;
    document.body.dataset.busy = "1";
    const wasPlaying = app.playing;
    try {
      const data = await api("PUT", "/api/sessions/" + app.sid + "/config", change);
      showMessage("");
      if (!("preset" in change) && change.dataset !== "lecture" &&
          app.config.dataset === "lecture") {
        history.replaceState(null, "", location.pathname);
      }
      if (data.rebuilt) {
        applyState(data.state);
      } else {
        app.config = data.state.config;
        syncControls();
        applyFrame(data.state.frame);
        if (wasPlaying) send({cmd: "play"});
      }
    } catch (e) {
      showMessage(e.message);
      syncControls();
    } finally {
      app.busy = false;
      delete document.body.dataset.busy;
    }
  }

  function applyState(state) {
    app.state = state;
    app.config = state.config;
    app.history = state.history.slice();
    syncControls();
    buildNetwork();
    app.selected = null;
    hideExplanation();
    applyFrame(state.frame);
    if (app.config.dataset === "lecture") {
      app.selected = {part: "train", index: 0};
      requestExplanation(true);
    }
  }

  // ------------------------------------------------------------------ network diagram
  function nodeSize(units) {
    if (units <= 8) return 36;
    if (units <= 16) return 22;
    return 12;
  }

  function buildNetwork() {
    const net = $("network");
    for (const el of [...net.querySelectorAll(".column, .node, .layer-head")]) el.remove();
    const st = app.state, c = app.config;
    const lectureSet = c.dataset === "lecture";
    const inputs = lectureSet ? ["x1", "x2", "x3"] : Object.keys(app.options.features);
    const labels = lectureSet ? {x1: "x₁", x2: "x₂", x3: "x₃"} : app.options.features;
    const sizes = st.sizes;
    const columns = [inputs.length, ...c.hidden, sizes[sizes.length - 1]];
    const colWidth = 96;
    const tallest = Math.max(...columns.map((n, i) =>
      n * (nodeSize(i === 0 ? 8 : n) + 10)));
    const height = Math.max(260, tallest + 40);
    const width = colWidth * columns.length + 20;
    net.style.width = width + "px";
    net.style.height = height + "px";
    const svg = $("edges");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.innerHTML = "";
    app.nodes = [];
    // positions: column k, unit j
    const pos = [];
    columns.forEach((n, k) => {
      const size = nodeSize(k === 0 ? 8 : n);
      const gap = size + 10;
      const top = 30 + (height - 30 - n * gap) / 2;
      const x = 10 + k * colWidth + (colWidth - size) / 2;
      pos.push([...Array(n).keys()].map((j) => ({x, y: top + j * gap, size})));
      const head = document.createElement("div");
      head.className = "layer-head";
      head.style.left = (10 + k * colWidth) + "px";
      head.style.width = colWidth + "px";
      if (k === 0) head.textContent = "inputs x⁽⁰⁾";
      else if (k === columns.length - 1) head.textContent = "output h(x)";
      else {
        head.innerHTML = "";
        const t = document.createElement("div");
        t.textContent = `layer ${k}: ${n} unit${n === 1 ? "" : "s"}`;
        head.appendChild(t);
        if (!lectureSet) {
          const plus = document.createElement("button");
          plus.textContent = "+"; plus.className = "unit-add"; plus.dataset.layer = k;
          plus.title = "Add a unit to layer " + k;
          plus.addEventListener("click", () => configure((cfg) => {
            const h = cfg.hidden.slice();
            if (k > h.length || h[k - 1] >= app.options.max_units) return null;
            h[k - 1] += 1;
            return {hidden: h};
          }));
          const minus = document.createElement("button");
          minus.textContent = "−"; minus.className = "unit-remove"; minus.dataset.layer = k;
          minus.title = "Remove a unit from layer " + k;
          minus.addEventListener("click", () => configure((cfg) => {
            const h = cfg.hidden.slice();
            if (k > h.length || h[k - 1] <= 1) return null;
            h[k - 1] -= 1;
            return {hidden: h};
          }));
          head.appendChild(plus); head.appendChild(minus);
        }
      }
      net.appendChild(head);
    });
    // input nodes: every feature, the used ones connected
    const used = c.features;
    let usedIndex = 0;
    const inputPos = [];
    inputs.forEach((f, j) => {
      const p = pos[0][j];
      const on = used.includes(f);
      const node = makeNode(p, "input" + (on ? "" : " off"), labels[f]);
      node.dataset.feature = f;
      node.title = on ? `${labels[f]}: used (click to drop)` : `${labels[f]}: click to use`;
      if (on) {
        const pic = st.feature_pictures[usedIndex++];
        node.canvas.dataset.picture = "feature";
        pictureToCanvas(node.canvas, decode(pic.data), st.unit_grid, false);
        inputPos.push(p);
      }
      if (!lectureSet) {
        node.addEventListener("click", () => configure((cfg) => {
          const cur = cfg.features;
          return {features: cur.includes(f) ? cur.filter((x) => x !== f) : [...cur, f]};
        }));
      }
    });
    // hidden and output nodes
    const unitPos = [inputPos];
    for (let k = 1; k < columns.length; k++) {
      const layerNodes = [];
      pos[k].forEach((p, j) => {
        const out = k === columns.length - 1;
        const node = makeNode(p, out ? "output" : "hidden", "");
        node.dataset.layer = k; node.dataset.unit = j + 1;
        node.title = out ? `output ${j + 1}` : `x_${j + 1}^(${k})`;
        layerNodes.push(node);
      });
      app.nodes.push(layerNodes);
      unitPos.push(pos[k]);
    }
    // edges: one line per weight w_ij^(l)
    const ns = "http://www.w3.org/2000/svg";
    app.edges = [];
    for (let l = 1; l < unitPos.length; l++) {
      const lines = [];
      unitPos[l].forEach((to, j) => {
        unitPos[l - 1].forEach((from, i) => {
          const line = document.createElementNS(ns, "line");
          line.setAttribute("x1", from.x + from.size);
          line.setAttribute("y1", from.y + from.size / 2);
          line.setAttribute("x2", to.x);
          line.setAttribute("y2", to.y + to.size / 2);
          const title = document.createElementNS(ns, "title");
          line.appendChild(title);
          line.dataset.i = i + 1; line.dataset.j = j + 1; line.dataset.l = l;
          svg.appendChild(line);
          lines.push(line);
        });
      });
      app.edges.push(lines);
    }
  }

  function makeNode(p, kind, label) {
    const node = document.createElement("div");
    node.className = "node " + kind;
    node.style.left = p.x + "px"; node.style.top = p.y + "px";
    node.style.width = p.size + "px"; node.style.height = p.size + "px";
    const canvas = document.createElement("canvas");
    node.appendChild(canvas);
    node.canvas = canvas;
    if (label) {
      const span = document.createElement("span");
      span.className = "node-label";
      span.textContent = label;
      node.appendChild(span);
    }
    $("network").appendChild(node);
    return node;
  }

  function drawUnits() {
    const f = app.frame;
    if (!f || !app.nodes.length) return;
    const discrete = $("discretize").checked;
    f.units.forEach((layer, k) => {
      layer.forEach((pic, j) => {
        const node = app.nodes[k] && app.nodes[k][j];
        if (node) pictureToCanvas(node.canvas, decode(pic.data), app.state.unit_grid, discrete);
      });
    });
  }

  function drawEdges() {
    const f = app.frame;
    if (!f) return;
    f.weights.forEach((layer, idx) => {
      const lines = app.edges[idx];
      if (!lines) return;
      const W = decodeFloats(layer.W);
      const [rows, cols] = layer.shape;
      const maxAbs = Math.max(1e-9, ...W.map(Math.abs));
      const scale = Math.max(1, maxAbs);
      for (let j = 0; j < rows; j++) {
        for (let i = 0; i < cols; i++) {
          const line = lines[j * cols + i];
          if (!line) continue;
          const w = W[j * cols + i];
          const c = w >= 0 ? POS : NEG;
          line.setAttribute("stroke", `rgb(${c[0]},${c[1]},${c[2]})`);
          line.setAttribute("stroke-width", (0.3 + 5 * Math.abs(w) / scale).toFixed(2));
          line.firstChild.textContent = `w_${i + 1}${j + 1}^(${idx + 1}) = ${w.toPrecision(4)}`;
        }
      }
    });
  }

  // ------------------------------------------------------------------ output picture
  function toPixel(x, y, canvas) {
    const [x0, x1, y0, y1] = app.state.domain;
    return [(x - x0) / (x1 - x0) * canvas.width, (y1 - y) / (y1 - y0) * canvas.height];
  }

  // where a point is drawn, in CSS pixels relative to the regions canvas (for tests too)
  app.pointPixel = function (part, index) {
    const canvas = $("regions");
    const i = globalIndex(part, index);
    const pts = app.state.points;
    const [px, py] = toPixel(pts.x[i], pts.y[i], canvas);
    const r = canvas.getBoundingClientRect();
    return {x: px * r.width / canvas.width, y: py * r.height / canvas.height};
  };

  function globalIndex(part, index) {
    const nTrain = app.state.points.part.filter((p) => p === "train").length;
    return part === "train" ? index : nTrain + index;
  }

  function drawRegions() {
    const canvas = $("regions"), f = app.frame;
    if (!f || !app.state) return;
    const ctx = canvas.getContext("2d");
    const g = app.state.grid;
    const off = document.createElement("canvas");
    const discrete = $("discretize").checked;
    if (f.output.kind === "signed") {
      pictureToCanvas(off, decode(f.output.data), g, discrete);
    } else {
      off.width = g; off.height = g;
      const octx = off.getContext("2d");
      const img = octx.createImageData(g, g);
      const cls = decode(f.output.classes), conf = decode(f.output.confidence);
      for (let i = 0; i < g * g; i++) {
        const t = discrete ? 1 : Math.max(0, (conf[i] / 255 - 1 / 3) * 1.5);
        const c = mix(MID, CLASS[cls[i]] || MID, t);
        img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2];
        img.data[4 * i + 3] = 255;
      }
      octx.putImageData(img, 0, 0);
    }
    ctx.imageSmoothingEnabled = !discrete;
    ctx.globalAlpha = 1;
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "rgba(255,255,255,0.25)";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    // axes through the origin
    const [ox, oy] = toPixel(0, 0, canvas);
    ctx.strokeStyle = "rgba(0,0,0,0.15)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, oy); ctx.lineTo(canvas.width, oy);
    ctx.moveTo(ox, 0); ctx.lineTo(ox, canvas.height);
    ctx.stroke();
    const pts = app.state.points, showTest = $("show-test").checked;
    for (let i = 0; i < pts.x.length; i++) {
      const test = pts.part[i] === "test";
      if (test && !showTest) continue;
      const [px, py] = toPixel(pts.x[i], pts.y[i], canvas);
      const c = CLASS[pts.label[i]] || MID;
      ctx.beginPath();
      ctx.arc(px, py, pts.x.length > 1 ? 3.5 : 6, 0, 2 * Math.PI);
      ctx.fillStyle = `rgb(${c[0]},${c[1]},${c[2]})`;
      ctx.fill();
      ctx.lineWidth = test ? 1.5 : 1;
      ctx.strokeStyle = test ? "#222" : "#fff";
      ctx.stroke();
    }
    if (app.selected) {
      const i = globalIndex(app.selected.part, app.selected.index);
      if (i < pts.x.length) {
        const [px, py] = toPixel(pts.x[i], pts.y[i], canvas);
        ctx.beginPath();
        ctx.arc(px, py, 9, 0, 2 * Math.PI);
        ctx.lineWidth = 2.5;
        ctx.strokeStyle = "#111";
        ctx.stroke();
      }
    }
  }

  function drawChart() {
    const canvas = $("loss-chart"), ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    const hist = app.history;
    if (hist.length < 1) return;
    let maxY = 0;
    for (const p of hist) maxY = Math.max(maxY, p[1], p[2] === null ? 0 : p[2]);
    maxY = maxY || 1;
    const e0 = hist[0][0], e1 = Math.max(hist[hist.length - 1][0], e0 + 1e-9);
    const line = (k, colour) => {
      ctx.beginPath();
      let started = false;
      for (const p of hist) {
        if (p[k] === null) continue;
        const x = (p[0] - e0) / (e1 - e0) * (w - 4) + 2;
        const y = h - 2 - p[k] / maxY * (h - 6);
        if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
      }
      ctx.strokeStyle = colour; ctx.lineWidth = 1.5; ctx.stroke();
    };
    line(1, "#999");
    line(2, "#111");
  }

  // ------------------------------------------------------------------ frames
  function applyFrame(frame) {
    app.frame = frame;
    $("epoch").textContent = fmtEpoch(frame.epoch);
    $("speed").textContent = frame.speed ? frame.speed.toFixed(frame.speed < 10 ? 1 : 0) : "0";
    $("train-loss").textContent = fmtLoss(frame.train_loss);
    $("test-loss").textContent = fmtLoss(frame.test_loss);
    $("test-loss").dataset.value = frame.test_loss === null ? "" : frame.test_loss;
    $("train-loss").dataset.value = frame.train_loss;
    const p = frame.history_point;
    const last = app.history[app.history.length - 1];
    if (last && last[0] === p[0]) app.history[app.history.length - 1] = p;
    else app.history.push(p);
    if (app.history.length > 4000) {
      app.history = app.history.filter((_, i) => i % 2 === 0 || i >= 2000);
    }
    drawRegions();
    drawUnits();
    drawEdges();
    drawChart();
    if (app.selected && !$("explain").hidden) requestExplanation(false);
  }

  // ------------------------------------------------------------------ the socket
  function openSocket() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/api/sessions/${app.sid}/ws`);
    app.ws = ws;
    app.wsReady = new Promise((resolve) => { ws.onopen = resolve; });
    ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "frame") {
        if (msg.playing !== app.playing) setPlaying(msg.playing);
        applyFrame(msg);
        requestAnimationFrame(() => send({cmd: "ack"}));
      } else if (msg.type === "status") {
        setPlaying(msg.playing);
      } else if (msg.type === "reset") {
        applyState(msg.state);
      } else if (msg.type === "error") {
        showMessage(msg.message);
      }
    };
    ws.onclose = () => {
      setPlaying(false);
      if (app.ws === ws) showMessage("The connection to the server closed: reload the page.");
    };
  }

  async function send(msg) {
    if (!app.ws) return;
    await app.wsReady;
    if (app.ws.readyState === WebSocket.OPEN) app.ws.send(JSON.stringify(msg));
  }

  function setPlaying(on) {
    app.playing = on;
    const b = $("play");
    b.classList.toggle("playing", on);
    b.innerHTML = on ? PAUSE_ICON : PLAY_ICON;
    b.setAttribute("aria-label", on ? "pause" : "play");
    document.body.classList.toggle("is-playing", on);
  }

  // ------------------------------------------------------------------ explaining a point
  function onRegionsClick(ev) {
    const canvas = $("regions"), r = canvas.getBoundingClientRect();
    const cx = (ev.clientX - r.left) * canvas.width / r.width;
    const cy = (ev.clientY - r.top) * canvas.height / r.height;
    const pts = app.state.points, showTest = $("show-test").checked;
    let best = -1, bestD = 12 * 12;
    for (let i = 0; i < pts.x.length; i++) {
      if (pts.part[i] === "test" && !showTest) continue;
      const [px, py] = toPixel(pts.x[i], pts.y[i], canvas);
      const d = (px - cx) ** 2 + (py - cy) ** 2;
      if (d < bestD) { bestD = d; best = i; }
    }
    if (best < 0) return;
    const nTrain = pts.part.filter((p) => p === "train").length;
    app.selected = best < nTrain ? {part: "train", index: best}
      : {part: "test", index: best - nTrain};
    drawRegions();
    requestExplanation(true);
  }

  async function requestExplanation(now) {
    if (!app.selected) return;
    if (!now && performance.now() - app.lastExplain < 400) return;
    if (app.explainBusy) { app.explainAgain = true; return; }
    app.explainBusy = true;
    app.lastExplain = performance.now();
    const sel = app.selected;
    try {
      const e = await api("GET", `/api/sessions/${app.sid}/explain?part=${sel.part}` +
                                 `&index=${sel.index}`);
      if (app.selected === sel) renderExplanation(e);
    } catch (err) {
      showMessage(err.message);
    } finally {
      app.explainBusy = false;
      if (app.explainAgain) { app.explainAgain = false; requestExplanation(true); }
    }
  }

  function hideExplanation() {
    $("explain").hidden = true;
    $("explain-empty").hidden = false;
  }

  function table(head, rows, cls) {
    const t = document.createElement("table");
    if (cls) t.className = cls;
    const thead = t.createTHead().insertRow();
    for (const h of head) {
      const th = document.createElement("th");
      th.textContent = h;
      thead.appendChild(th);
    }
    const body = t.createTBody();
    for (const r of rows) {
      const tr = body.insertRow();
      for (const v of r) tr.insertCell().textContent = v;
    }
    return t;
  }

  function renderExplanation(e) {
    $("explain-empty").hidden = true;
    $("explain").hidden = false;
    const raw = e.raw.map((v) => +v.toFixed(4)).join(", ");
    $("explain-point").textContent =
      `${e.part} point ${e.index + 1}: (${raw}), class ${e.label}, y = ${e.target}` +
      ` · x⁽⁰⁾ = (${e.x0.join(", ")}) · θ = ${e.activation}, loss = ${e.loss},` +
      ` η = ${e.eta} · epoch ${Math.round(e.epoch * 100) / 100}`;
    $("explain-h").textContent = `h(x) = ${e.h.join(", ")}`;
    const summary = $("explain-summary");
    summary.innerHTML = "";
    for (const line of e.summary.slice(1)) {
      const p = document.createElement("p");
      p.textContent = line;
      summary.appendChild(p);
    }
    // the delta table: one row per layer, delta_j^(l) from the layer tables' delta column
    const width = Math.max(...e.layers.map((l) => l.rows.length));
    const head = ["l", ...[...Array(width).keys()].map((j) => `δ_${j + 1}^(l)`)];
    const rows = e.layers.map((layer) => {
      const col = layer.head.findIndex((h) => h.startsWith("δ_j"));
      const vals = layer.rows.map((r) => r[col]);
      while (vals.length < width) vals.push("");
      return [String(layer.l), ...vals];
    });
    const dt = $("delta-table");
    dt.replaceChildren(...table(head, rows).childNodes);
    const box = $("explain-layers");
    box.innerHTML = "";
    for (const layer of e.layers) {
      const div = document.createElement("div");
      div.className = "explain-layer";
      const h = document.createElement("h4");
      h.textContent = layer.title;
      div.appendChild(h);
      const t = table(layer.head, layer.rows, "layer-table");
      t.dataset.layer = layer.l;
      div.appendChild(t);
      const d = document.createElement("details");
      const s = document.createElement("summary");
      s.textContent = layer.grad_title;
      d.appendChild(s);
      const fill = () => {   // built when opened: a wide network has thousands of weights
        if (!d.querySelector("table")) {
          d.appendChild(table(layer.grad_head, layer.grad_rows, "grad-table"));
        }
      };
      if (app.openGrads.has(layer.l)) { d.open = true; fill(); }
      d.addEventListener("toggle", () => {
        if (d.open) { app.openGrads.add(layer.l); fill(); } else app.openGrads.delete(layer.l);
      });
      div.appendChild(d);
      box.appendChild(div);
    }
    $("explain-command").textContent = e.command;
    $("weights-link").href = `/api/sessions/${app.sid}/weights`;
  }

  // ------------------------------------------------------------------ start
  async function start() {
    try {
      setPlaying(false);
      app.options = await api("GET", "/api/options");
      buildControls();
      const preset = new URLSearchParams(location.search).get("preset");
      const body = preset ? {preset} : {};
      const data = await api("POST", "/api/sessions", body);
      app.sid = data.id;
      applyState(data.state);
      openSocket();
      document.body.dataset.ready = "1";
    } catch (e) {
      showMessage(e.message);
    }
  }

  window.addEventListener("beforeunload", () => { if (app.ws) app.ws.close(); });
  start();
})();
