/* The demo page: one widget, its callback payload printed below it. */
(function () {
  "use strict";
  var body = document.body;
  var token = body.getAttribute("data-public-token");
  var result = document.getElementById("result");
  if (!/^[0-9a-f]{64}$/.test(token)) {
    document.getElementById("no-token").hidden = false;
    return;
  }
  function show(kind, payload) {
    result.textContent = kind + "\n" + JSON.stringify(payload, null, 2);
    result.setAttribute("data-kind", kind);
  }
  new window.Payout131Widget({
    container: "#widget",
    publicToken: token,
    language: body.getAttribute("data-language"),
    kind: body.getAttribute("data-kind"),
    onSuccess: function (payload) {
      show("onSuccess", payload);
    },
    onError: function (payload) {
      show("onError", payload);
    }
  }).render();
})();
