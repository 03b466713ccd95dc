/*
 * Poseidon for CTFd: the challenge type's view script and the instance panel.
 *
 * CTFd loads this script each time a `poseidon` challenge is opened (it removes and re-inserts
 * the <script>), then renders the modal from view.html. Themes render the modal their own way
 * and at their own time (core-beta sets it through Alpine's x-html after postRender returns), so
 * the panel does not rely on those hooks: a MutationObserver mounts a panel on every
 * `.poseidon-panel` element that appears and disposes of panels whose element left the page.
 *
 * Status updates use the plugin's long-poll (the server waits on Poseidon's event stream and
 * answers as soon as the instance changes), one request at a time per visible panel, paused
 * while the modal or the tab is hidden. Nothing here trusts or keeps secrets: the browser never
 * sees the API key, a flag or an instance id; "Open" fetches a fresh access link on each click.
 */
(function () {
  "use strict";

  // -- CTFd's challenge-type hooks (as the standard type's view.js) ---------------------------
  if (window.CTFd && CTFd._internal && CTFd._internal.challenge) {
    var hooks = CTFd._internal.challenge;
    hooks.data = undefined;
    hooks.renderer = null;
    hooks.render = null;
    hooks.preRender = function () {};
    hooks.postRender = function () {
      if (window.PoseidonPanel) window.PoseidonPanel.scan();
    };
    hooks.submit = function (preview) {
      var $ = CTFd.lib.$;
      var body = { challenge_id: parseInt($("#challenge-id").val(), 10), submission: $("#challenge-input").val() };
      var params = {};
      if (preview) params.preview = true;
      return CTFd.api.post_challenge_attempt(params, body).then(function (response) {
        return response;
      });
    };
  }

  var VERSION = 1;
  if (window.PoseidonPanel && window.PoseidonPanel.version === VERSION) {
    window.PoseidonPanel.scan();
    return;
  }

  // This script's folder (themes that load it through jQuery's getScript have no currentScript:
  // then the plugin's usual place).
  var script = document.currentScript;
  var ASSETS = script && script.src ? script.src.replace(/[^/]*(\?.*)?$/, "") : config().root + "/plugins/poseidon/assets/";

  function config() {
    var c = (window.CTFd && window.CTFd.config) || {};
    var i = window.init || {};
    return { root: c.urlRoot || i.urlRoot || "", nonce: c.csrfNonce || i.csrfNonce || "" };
  }

  var UNREACHABLE_CTFD = "Cannot reach CTFd right now. Check your connection; the panel retries by itself.";
  var SIGN_IN = "Sign in to use instances.";

  function sleep(ms, signal) {
    return new Promise(function (resolve) {
      var t = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", function () { clearTimeout(t); resolve(); }, { once: true });
    });
  }

  async function call(method, path, body, signal) {
    var cfg = config();
    var headers = { Accept: "application/json" };
    var init = { method: method, credentials: "same-origin", headers: headers, cache: "no-store", redirect: "follow" };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      headers["CSRF-Token"] = cfg.nonce;
      init.body = JSON.stringify(body || {});
    }
    if (signal) init.signal = signal;
    var res = await fetch(cfg.root + "/plugins/poseidon/api/v1" + path, init);
    var data = null;
    var type = res.headers.get("content-type") || "";
    if (type.indexOf("application/json") >= 0) {
      try {
        data = await res.json();
      } catch (e) {
        if (signal && signal.aborted) throw e; // aborted while reading: not an answer
        data = null;
      }
    }
    if (data === null) {
      // CTFd answers HTML when the session is gone (a login page or redirect).
      return { status: res.status === 200 ? 401 : res.status, data: { message: res.status >= 500 ? UNREACHABLE_CTFD : SIGN_IN } };
    }
    return { status: res.status, data: data };
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  function formatLeft(ms) {
    if (ms <= 0) return "0:00";
    var s = Math.floor(ms / 1000);
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    return (h > 0 ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
  }

  function clock(iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  var TRANSITIONAL = { queued: 1, pending: 1, starting: 1, stopping: 1 };

  /** One panel in one rendered modal. */
  function Panel(root) {
    this.root = root;
    this.challenge = root.getAttribute("data-poseidon-challenge");
    this.state = null;
    this.etag = "";
    this.offset = 0;
    this.waitSeconds = 0;
    this.busy = false;
    this.disposed = false;
    this.inflight = null;
    this.wake = null;
    this.hiddenWait = null;
    this.loopMessage = false;
    this.confirming = null;
    root.__poseidon = this;
    this.build();
    var self = this;
    this.ticker = setInterval(function () { self.tick(); }, 1000);
    this.loop();
  }

  Panel.prototype.build = function () {
    var r = this.root;
    while (r.firstChild) r.removeChild(r.firstChild);
    r.setAttribute("data-status", "loading");
    this.head = el("div", { class: "poseidon-head" });
    this.statusEl = el("span", { class: "poseidon-status" }, "Loading your instance…");
    this.countdownEl = el("span", { class: "poseidon-countdown text-muted" });
    this.head.appendChild(this.statusEl);
    this.head.appendChild(this.countdownEl);
    this.detailEl = el("p", { class: "poseidon-note poseidon-detail" });
    this.endpointsEl = el("div", { class: "poseidon-endpoints" });
    this.actionsEl = el("div", { class: "poseidon-actions" });
    this.renewNoteEl = el("p", { class: "poseidon-note poseidon-renew-note" });
    this.messageEl = el("div", { class: "poseidon-message", role: "status", "aria-live": "polite" });
    [this.head, this.detailEl, this.endpointsEl, this.actionsEl, this.renewNoteEl, this.messageEl].forEach(function (n) { r.appendChild(n); });
    var self = this;
    this.buttons = {};
    [["launch", "Launch instance", "btn-primary"], ["renew", "Renew", "btn-outline-secondary"],
      ["restart", "Restart", "btn-outline-secondary"], ["stop", "Stop", "btn-outline-danger"]].forEach(function (b) {
      var btn = el("button", { type: "button", class: "btn btn-sm " + b[2], "data-action": b[0] }, b[1]);
      btn.hidden = true;
      btn.addEventListener("click", function (ev) { ev.preventDefault(); self.onAction(b[0], btn); });
      self.buttons[b[0]] = btn;
      self.actionsEl.appendChild(btn);
    });
  };

  Panel.prototype.visible = function () {
    return document.visibilityState !== "hidden" && this.root.isConnected && this.root.getClientRects().length > 0;
  };

  Panel.prototype.now = function () { return Date.now() + this.offset; };

  Panel.prototype.say = function (text, kind) {
    this.messageEl.textContent = "";
    this.messageKind = text ? kind || "info" : null;
    if (!text) return;
    var box = el("div", { class: "alert alert-" + (kind || "info") + " py-1 px-2 mb-0" }, text);
    this.messageEl.appendChild(box);
  };

  Panel.prototype.dispose = function () {
    if (this.disposed) return;
    this.disposed = true;
    clearInterval(this.ticker);
    if (this.inflight) this.inflight.abort();
    if (this.wake) this.wake.abort();
    if (this.hiddenWait) this.hiddenWait.abort();
    delete this.root.__poseidon;
    registry.delete(this);
  };

  /** Every second: countdown, renew window, and pausing while hidden or gone. */
  Panel.prototype.tick = function () {
    if (!this.root.isConnected) return this.dispose();
    if (!this.visible()) {
      // Hidden: drop a long-poll and cut a back-off short, so the loop parks now (no request
      // until shown) instead of when a pause of up to a minute ends.
      if (this.inflight && this.inflight.longPoll) this.inflight.abort();
      if (this.wake) this.wake.abort();
      return;
    }
    if (this.hiddenWait) this.hiddenWait.abort();
    this.renderTime();
  };

  Panel.prototype.kick = function () {
    if (this.inflight) this.inflight.abort();
    if (this.wake) this.wake.abort();
  };

  Panel.prototype.loop = async function () {
    var failures = 0;
    var first = true;
    var quick = 0;
    while (!this.disposed) {
      if (!this.visible()) {
        // Hidden modal or tab: no requests; the ticker wakes this when the panel shows again.
        this.hiddenWait = new AbortController();
        await sleep(60000, this.hiddenWait.signal);
        this.hiddenWait = null;
        continue;
      }
      var wait = first ? 0 : this.waitSeconds;
      var ctl = new AbortController();
      ctl.longPoll = wait > 0;
      this.inflight = ctl;
      var timer = setTimeout(function () { ctl.abort(); }, (wait + 20) * 1000);
      var started = Date.now();
      var before = this.etag;
      var res = null;
      try {
        res = await call("GET", "/challenges/" + encodeURIComponent(this.challenge) + "/instance?wait=" + wait + "&known=" + encodeURIComponent(this.etag), null, ctl.signal);
      } catch (e) {
        res = ctl.signal.aborted ? "aborted" : null;
      } finally {
        clearTimeout(timer);
        if (this.inflight === ctl) this.inflight = null;
      }
      if (this.disposed) return;
      if (res === "aborted") continue; // an action, a hide or a timeout: ask again at once
      if (res === null || res.status >= 400) {
        failures += 1;
        this.unavailable(res ? res.data.message : UNREACHABLE_CTFD, res ? res.status : 0);
        await this.pause(Math.min(60000, 2000 * Math.pow(2, Math.min(failures, 5))));
        continue;
      }
      failures = 0;
      first = false;
      this.apply(res.data);
      var status = this.state && this.state.instance ? this.state.instance.status : "none";
      if (this.waitSeconds <= 0) {
        // Long-poll switched off by the admins: re-read sparingly.
        await this.pause(TRANSITIONAL[status] ? 3000 : 30000);
      } else if (this.etag === before && Date.now() - started < 1000) {
        // The server answered at once without news (its event stream is down): back off.
        quick += 1;
        await this.pause(Math.min(30000, 1000 * Math.pow(2, Math.min(quick, 5))));
      } else {
        quick = 0;
      }
    }
  };

  Panel.prototype.pause = async function (ms) {
    this.wake = new AbortController();
    await sleep(ms, this.wake.signal);
    this.wake = null;
  };

  Panel.prototype.unavailable = function (message, status) {
    if (status === 401 || status === 403) this.root.setAttribute("data-status", "refused");
    else this.root.setAttribute("data-status", "unavailable");
    if (!this.state) {
      this.statusEl.textContent = "Instance unavailable";
      this.hideAll();
    }
    this.say(message || UNREACHABLE_CTFD, "warning");
    this.loopMessage = true;
  };

  Panel.prototype.hideAll = function () {
    for (var k in this.buttons) this.buttons[k].hidden = true;
    this.endpointsEl.textContent = "";
    this.detailEl.textContent = "";
    this.renewNoteEl.textContent = "";
    this.countdownEl.textContent = "";
  };

  Panel.prototype.apply = function (data) {
    if (data.serverTime) {
      var server = Date.parse(data.serverTime);
      if (!isNaN(server)) this.offset = server - Date.now();
    }
    if (typeof data.waitSeconds === "number") this.waitSeconds = data.waitSeconds;
    var recovered = this.loopMessage;
    var changed = (data.etag || "") !== this.etag;
    this.loopMessage = false;
    this.state = data;
    this.etag = data.etag || "";
    this.render();
    if (data.message) this.say(data.message, "success");
    else if (recovered) this.say("");
    else if (changed && (this.messageKind === "info" || this.messageKind === "success")) this.say(""); // news replaces "Launching…"
  };

  Panel.prototype.render = function () {
    var inst = this.state && this.state.instance;
    var b = this.buttons;
    // A pending "click again" survives re-renders (a status update may land between the clicks).
    if (!inst || !inst.canStop) this.confirming = null;
    b.restart.textContent = this.confirming === "restart" ? "Click again to restart" : "Restart";
    b.stop.textContent = this.confirming === "stop" ? "Click again to stop" : "Stop";
    this.root.setAttribute("data-status", inst ? inst.status : "none");
    this.endpointsEl.textContent = "";
    this.detailEl.textContent = "";
    if (!inst) {
      this.statusEl.textContent = "No instance running";
      this.countdownEl.textContent = "";
      if (this.state && this.state.lastFailure) {
        this.detailEl.textContent = "Your last instance could not start. Launch again; if it keeps failing, tell the organisers.";
      }
      b.launch.hidden = false;
      b.launch.disabled = this.busy;
      b.renew.hidden = b.restart.hidden = b.stop.hidden = true;
      this.renewNoteEl.textContent = "";
      return;
    }
    this.statusEl.textContent = inst.statusText || inst.status;
    b.launch.hidden = true;
    b.renew.hidden = !inst.canRestart;
    b.restart.hidden = !inst.canRestart;
    b.stop.hidden = !inst.canStop;
    b.restart.disabled = b.stop.disabled = this.busy;
    if (inst.status === "queued" && inst.queue) {
      var q = "Position " + inst.queue.position + " in line";
      if (inst.queue.estimatedStartAt) q += ", estimated start " + clock(inst.queue.estimatedStartAt);
      this.detailEl.textContent = q + ". It starts by itself; keep this window open or come back later.";
    } else if (inst.status === "pending" || inst.status === "starting") {
      this.detailEl.textContent = "Your instance is starting; this usually takes a few seconds.";
    } else if (inst.status === "stopping") {
      this.detailEl.textContent = "Your instance is being stopped.";
    }
    var self = this;
    (inst.endpoints || []).forEach(function (ep) {
      var row = el("div", { class: "poseidon-endpoint", "data-endpoint": ep.name });
      if (ep.protocol === "http") {
        var open = el("button", { type: "button", class: "btn btn-sm btn-success", "data-action": "open", "data-endpoint": ep.name },
          inst.endpoints.length > 1 ? "Open " + ep.name : "Open");
        open.addEventListener("click", function (ev) { ev.preventDefault(); self.open(ep.name, open, row); });
        row.appendChild(open);
      } else {
        row.appendChild(el("span", null, ep.name + ":"));
        var code = el("code", { "data-connection": ep.name }, ep.command);
        row.appendChild(code);
        var copy = el("button", { type: "button", class: "btn btn-sm btn-outline-secondary", "data-action": "copy" }, "Copy");
        copy.addEventListener("click", function (ev) { ev.preventDefault(); self.copy(ep.command, copy); });
        row.appendChild(copy);
        if (ep.alternative) row.appendChild(el("small", { class: "text-muted w-100" }, "or: " + ep.alternative));
      }
      self.endpointsEl.appendChild(row);
    });
    this.renderTime();
  };

  /** The parts that move with the clock: countdown and whether renew is open yet. */
  Panel.prototype.renderTime = function () {
    var inst = this.state && this.state.instance;
    if (!inst) return;
    var now = this.now();
    if (inst.status === "queued") {
      this.countdownEl.textContent = "";
    } else if (inst.expiresAt) {
      var left = Date.parse(inst.expiresAt) - now;
      this.countdownEl.textContent = left > 0 ? "expires in " + formatLeft(left) : "expired";
      if (left <= 0 && !this.expiredKick) {
        this.expiredKick = true;
        this.kick();
      } else if (left > 0) {
        this.expiredKick = false;
      }
    }
    var renew = inst.renew || { allowed: false };
    var allowed = renew.allowed;
    var reason = renew.reason || "";
    if (!allowed && renew.opensAt) {
      var opens = Date.parse(renew.opensAt);
      if (opens <= now) {
        allowed = true;
        reason = "";
      } else {
        reason = (renew.reason || "Renewal opens shortly before expiry.") + " Opens in " + formatLeft(opens - now) + ".";
      }
    }
    var btn = this.buttons.renew;
    btn.disabled = this.busy || !allowed;
    btn.title = allowed ? "" : reason;
    var note = allowed ? "" : reason;
    if (allowed && typeof inst.renewalsLeft === "number") note = inst.renewalsLeft + " renewal" + (inst.renewalsLeft === 1 ? "" : "s") + " left.";
    this.renewNoteEl.textContent = note;
  };

  Panel.prototype.setBusy = function (busy) {
    this.busy = busy;
    for (var k in this.buttons) this.buttons[k].disabled = busy;
    if (!busy) this.render();
  };

  Panel.prototype.onAction = async function (action, btn) {
    if (this.busy) return;
    if ((action === "stop" || action === "restart") && this.confirming !== action) {
      // Destructive: a second click within five seconds confirms.
      this.confirming = action;
      btn.textContent = action === "stop" ? "Click again to stop" : "Click again to restart";
      var self = this;
      setTimeout(function () {
        if (self.confirming === action) {
          self.confirming = null;
          btn.textContent = action === "stop" ? "Stop" : "Restart";
        }
      }, 5000);
      return;
    }
    this.confirming = null;
    this.say("");
    this.setBusy(true);
    var path = "/challenges/" + encodeURIComponent(this.challenge) + "/instance" + (action === "launch" ? "" : "/" + action);
    var res = null;
    try {
      res = await call("POST", path, {});
    } catch (e) {
      res = null;
    }
    this.setBusy(false);
    if (res === null) return this.say(UNREACHABLE_CTFD, "warning");
    if (res.status >= 400) {
      this.say(res.data.message || "The request was refused.", res.status === 429 ? "warning" : "danger");
      if (res.status !== 429) this.kick();
      return;
    }
    this.apply(res.data);
    if (!res.data.message && action === "launch") this.say("Launching…", "info");
    this.kick();
  };

  Panel.prototype.open = async function (endpoint, btn, row) {
    if (this.busy) return;
    // A window opened in the click itself is not a blocked popup; it gets the link once known.
    var win = null;
    try { win = window.open("", "_blank"); } catch (e) { win = null; }
    if (win) {
      try { win.opener = null; } catch (e) { /* cross-origin already */ }
    }
    btn.disabled = true;
    this.say("");
    var res = null;
    try {
      res = await call("POST", "/challenges/" + encodeURIComponent(this.challenge) + "/instance/access", { endpoint: endpoint });
    } catch (e) {
      res = null;
    }
    btn.disabled = false;
    if (res === null || res.status >= 400 || !res.data.url || !/^https?:\/\//.test(res.data.url)) {
      if (win) win.close();
      this.say(res === null ? UNREACHABLE_CTFD : (res.data.message || "The instance cannot be opened now."), "danger");
      return;
    }
    if (win && !win.closed) {
      win.location.replace(res.data.url);
      return;
    }
    // Popup blocked: offer the link itself (valid for a couple of minutes).
    var link = el("a", { href: res.data.url, target: "_blank", rel: "noopener noreferrer", class: "btn btn-sm btn-link", "data-action": "open-link" }, "Open " + endpoint + " in a new tab");
    var old = row.querySelector("[data-action=open-link]");
    if (old) old.remove();
    row.appendChild(link);
  };

  Panel.prototype.copy = function (text, btn) {
    var done = function () { btn.textContent = "Copied"; setTimeout(function () { btn.textContent = "Copy"; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var sel = window.getSelection();
      var code = btn.parentNode.querySelector("code");
      if (sel && code) {
        var range = document.createRange();
        range.selectNodeContents(code);
        sel.removeAllRanges();
        sel.addRange(range);
      }
    }
  };

  // -- mounting -------------------------------------------------------------------------------
  var registry = new Set();
  var scheduled = false;

  function scan() {
    scheduled = false;
    registry.forEach(function (p) { if (!p.root.isConnected) p.dispose(); });
    var nodes = document.querySelectorAll(".poseidon-panel[data-poseidon-challenge]");
    for (var i = 0; i < nodes.length; i++) {
      if (!nodes[i].__poseidon) registry.add(new Panel(nodes[i]));
    }
  }

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    (window.queueMicrotask || setTimeout)(scan);
  }

  if (!document.querySelector("link[data-poseidon-css]")) {
    var css = el("link", { rel: "stylesheet", href: ASSETS + "panel.css", "data-poseidon-css": "1" });
    document.head.appendChild(css);
  }
  new MutationObserver(schedule).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("visibilitychange", function () {
    registry.forEach(function (p) { if (document.visibilityState === "visible" && p.hiddenWait) p.hiddenWait.abort(); });
  });
  window.PoseidonPanel = { version: VERSION, scan: scan, panels: registry };
  scan();
})();
