/* The plugin's admin page: settings, connection test, challenge bindings, live instances and
 * flag-sharing incidents. Everything shown comes from the plugin's admin API and is inserted as
 * text (never as HTML). The API key is write-only here: the page learns only whether one is set. */
(function () {
  "use strict";

  function cfg() {
    var c = (window.CTFd && window.CTFd.config) || {};
    var i = window.init || {};
    return { root: c.urlRoot || i.urlRoot || "", nonce: c.csrfNonce || i.csrfNonce || "" };
  }

  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    var init = { method: method, credentials: "same-origin", headers: headers };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      headers["CSRF-Token"] = cfg().nonce;
      init.body = JSON.stringify(body || {});
    }
    return fetch(cfg().root + "/plugins/poseidon/api/v1/admin" + path, init).then(function (r) {
      return r.json().then(function (data) { return { status: r.status, data: data }; }, function () {
        return { status: r.status, data: { message: "CTFd answered " + r.status + "." } };
      });
    }, function () { return { status: 0, data: { message: "Cannot reach CTFd." } }; });
  }

  function $(id) { return document.getElementById(id); }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function show(id, text, kind) {
    var box = $(id);
    box.textContent = text || "";
    box.className = "alert mt-3 poseidon-result" + (text ? " alert-" + (kind || "info") : "");
  }

  var catalog = [];

  function renderSettings(s) {
    $("poseidon-url").value = s.url || "";
    $("poseidon-url").disabled = !!s.urlFromEnv;
    document.querySelector(".poseidon-url-env").textContent = s.urlFromEnv ? "Set by CTFD_POSEIDON_URL in CTFd's environment." : "";
    $("poseidon-key").value = "";
    $("poseidon-key").disabled = !!s.keyFromEnv;
    $("poseidon-key").placeholder = s.keySet ? "•••••••• (set; type a new key to replace it)" : "not set";
    document.querySelector(".poseidon-key-state").textContent = s.keySet
      ? "A key is set" + (s.keyFromEnv ? " by CTFD_POSEIDON_API_KEY" : "") + " (fingerprint " + s.keyFingerprint + "). It is never shown."
      : "No key yet. Use a Poseidon admin key (or a platform key: then the incident list from Poseidon is not available).";
    $("poseidon-prefix").value = s.prefix || "";
    $("poseidon-wait").value = s.waitSeconds;
    $("poseidon-admins").value = s.delegateAdmins;
  }

  function renderBindings(bindings) {
    var body = $("poseidon-bindings").querySelector("tbody");
    body.textContent = "";
    if (!bindings.length) {
      var empty = document.createElement("tr");
      cell(empty, "No poseidon challenges yet: create one in Challenges, type \"poseidon\".").colSpan = 5;
      body.appendChild(empty);
    }
    bindings.forEach(function (b) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-challenge-id", b.id);
      var name = document.createElement("td");
      var a = document.createElement("a");
      a.href = cfg().root + "/admin/challenges/" + b.id;
      a.textContent = b.name;
      name.appendChild(a);
      tr.appendChild(name);
      cell(tr, b.category);
      cell(tr, b.state);
      var pick = document.createElement("td");
      var select = document.createElement("select");
      select.className = "form-control custom-select form-select poseidon-binding";
      var ids = catalog.map(function (c) { return c.id; });
      if (b.poseidonId && ids.indexOf(b.poseidonId) < 0) ids.unshift(b.poseidonId);
      if (!b.poseidonId) ids.unshift("");
      ids.forEach(function (id) {
        var o = document.createElement("option");
        var entry = catalog.filter(function (c) { return c.id === id; })[0];
        o.value = id;
        o.textContent = id === "" ? "— choose —" : entry ? id + " (" + entry.state + ")" : id + " (not in Poseidon's catalog)";
        select.appendChild(o);
      });
      select.value = b.poseidonId || "";
      pick.appendChild(select);
      tr.appendChild(pick);
      var act = document.createElement("td");
      var save = document.createElement("button");
      save.type = "button";
      save.className = "btn btn-sm btn-outline-primary";
      save.textContent = "Save";
      save.addEventListener("click", function () {
        api("POST", "/bindings", { challengeId: b.id, poseidonId: select.value }).then(function (r) {
          save.textContent = r.status === 200 ? "Saved" : (r.data.message || "Refused");
          setTimeout(function () { save.textContent = "Save"; }, 2000);
        });
      });
      act.appendChild(save);
      tr.appendChild(act);
      body.appendChild(tr);
    });
  }

  function renderCatalog(list, message, invalid) {
    var body = $("poseidon-catalog").querySelector("tbody");
    body.textContent = "";
    (invalid || []).forEach(function (b) {
      var tr = document.createElement("tr");
      tr.className = "table-danger";
      cell(tr, b.id || "");
      cell(tr, b.file);
      cell(tr, "invalid");
      cell(tr, "no");
      cell(tr, (b.errors || []).join("; ")).colSpan = 2;
      body.appendChild(tr);
    });
    list.forEach(function (c) {
      var tr = document.createElement("tr");
      cell(tr, c.id);
      cell(tr, c.name);
      cell(tr, c.state);
      cell(tr, c.valid === false ? "no" : "yes");
      cell(tr, c.scope);
      cell(tr, (c.expose || []).map(function (e) { return e.name + "/" + e.protocol; }).join(", "));
      body.appendChild(tr);
    });
    show("poseidon-catalog-result", message || "", "warning");
  }

  function renderIncidents(id, list, local) {
    var body = $(id).querySelector("tbody");
    body.textContent = "";
    if (!list.length) {
      var empty = document.createElement("tr");
      cell(empty, "None.").colSpan = 5;
      body.appendChild(empty);
    }
    list.forEach(function (i) {
      var tr = document.createElement("tr");
      cell(tr, (local ? i.date : i.at) || "");
      cell(tr, local ? (i.challenge || i.challengeId) : i.challenge);
      cell(tr, (i.submittedByName ? i.submittedByName + " " : "") + "(" + i.submittedBy + ")");
      cell(tr, (i.ownerName ? i.ownerName + " " : "") + "(" + i.owner + ")");
      cell(tr, i.instance);
      body.appendChild(tr);
    });
  }

  function loadInstances() {
    api("GET", "/instances").then(function (r) {
      var body = $("poseidon-instances").querySelector("tbody");
      body.textContent = "";
      show("poseidon-instances-result", r.status === 200 ? "" : r.data.message, "warning");
      (r.data.instances || []).forEach(function (i) {
        var tr = document.createElement("tr");
        cell(tr, i.challenge);
        cell(tr, (i.teamName ? i.teamName + " " : "") + "(" + i.team + ")");
        cell(tr, i.user);
        cell(tr, i.status);
        cell(tr, i.expiresAt);
        cell(tr, i.reason);
        var act = document.createElement("td");
        var stop = document.createElement("button");
        stop.type = "button";
        stop.className = "btn btn-sm btn-outline-danger";
        stop.textContent = "Stop";
        stop.addEventListener("click", function () {
          if (!window.confirm("Stop this instance of " + i.challenge + "?")) return;
          api("POST", "/instances/" + encodeURIComponent(i.id) + "/stop").then(function () { loadInstances(); });
        });
        act.appendChild(stop);
        tr.appendChild(act);
        body.appendChild(tr);
      });
    });
  }

  function loadAll() {
    api("GET", "/overview").then(function (r) {
      if (r.status !== 200) return show("poseidon-settings-result", r.data.message, "danger");
      renderSettings(r.data.settings);
      renderIncidents("poseidon-incidents", r.data.incidents || [], true);
      api("GET", "/challenges").then(function (c) {
        catalog = c.data.challenges || [];
        renderCatalog(catalog, c.status === 200 ? "" : c.data.message, c.data.invalid);
        renderBindings(r.data.bindings || []);
      });
    });
    api("GET", "/incidents").then(function (r) {
      renderIncidents("poseidon-remote-incidents", r.data.incidents || [], false);
      show("poseidon-remote-incidents-result", r.status === 200 ? "" : r.data.message, "warning");
    });
    loadInstances();
  }

  $("poseidon-settings").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = {
      prefix: $("poseidon-prefix").value.trim(),
      waitSeconds: parseInt($("poseidon-wait").value || "0", 10),
      delegateAdmins: $("poseidon-admins").value,
    };
    if (!$("poseidon-url").disabled) body.url = $("poseidon-url").value.trim();
    var key = $("poseidon-key").value.trim();
    if (key && !$("poseidon-key").disabled) body.apiKey = key;
    api("POST", "/settings", body).then(function (r) {
      if (r.status !== 200) return show("poseidon-settings-result", r.data.message, "danger");
      renderSettings(r.data.settings);
      show("poseidon-settings-result", "Saved.", "success");
      loadAll();
    });
  });

  $("poseidon-test").addEventListener("click", function () {
    show("poseidon-settings-result", "Testing…", "info");
    api("POST", "/test").then(function (r) {
      var d = r.data;
      if (!d.ok) return show("poseidon-settings-result", d.message || "The test failed.", "danger");
      var states = Object.keys(d.catalog.states || {}).map(function (k) { return d.catalog.states[k] + " " + k; }).join(", ");
      var text = "Connected to Poseidon " + (d.version || "(version unknown)") + ". Catalog " + (d.catalog.revision || "") + ": " +
        d.catalog.challenges + " challenges" + (states ? " (" + states + ")" : "") + ", " + d.catalog.invalid + " invalid file(s)." +
        (d.adminKey ? "" : " The key is not an admin key: Poseidon's incident list is unavailable.");
      show("poseidon-settings-result", text, d.catalog.invalid ? "warning" : "success");
    });
  });

  $("poseidon-refresh").addEventListener("click", loadInstances);
  $("poseidon-delegate-url").textContent = window.location.origin + cfg().root + "/plugins/poseidon/auth";
  loadAll();
})();
