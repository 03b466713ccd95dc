/* Fills the Poseidon challenge datalist of the create/update forms from Poseidon's catalog
 * (through the plugin's admin API). Works without it: the field stays free text. */
(function () {
  "use strict";
  function root() {
    var c = (window.CTFd && window.CTFd.config) || {};
    return c.urlRoot || (window.init && window.init.urlRoot) || "";
  }
  function fill() {
    var list = document.getElementById("poseidon-challenges");
    var note = document.querySelector(".poseidon-catalog-note");
    if (!list || list.getAttribute("data-filled")) return;
    list.setAttribute("data-filled", "1");
    fetch(root() + "/plugins/poseidon/api/v1/admin/challenges", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        (data.challenges || []).forEach(function (c) {
          var o = document.createElement("option");
          o.value = c.id;
          o.textContent = c.id + " — " + (c.name || "") + " (" + c.state + ")";
          list.appendChild(o);
        });
        if (note) note.textContent = data.message || ((data.challenges || []).length + " challenges in Poseidon's catalog.");
      })
      .catch(function () { if (note) note.textContent = "Poseidon's catalog could not be read; type the id."; });
  }
  fill();
  setTimeout(fill, 500);
})();
