// The gateway checks CSRF by double submit: an unsafe request echoes the CSRF cookie in the x-csrf-token header.
// DRF's csrf.js (loaded before this) would send Django's token instead; this replaces its jQuery hook.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("gateway-csrf").textContent);

  function readCookie(name) {
    var prefix = name + "=";
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i].trim();
      if (part.indexOf(prefix) === 0) {
        return decodeURIComponent(part.substring(prefix.length));
      }
    }
    return null;
  }

  function isSameOrigin(url) {
    return new URL(url, window.location.href).origin === window.location.origin;
  }

  $.ajaxSetup({
    beforeSend: function (xhr, settings) {
      if (/^(GET|HEAD|OPTIONS|TRACE)$/i.test(settings.type) || !isSameOrigin(settings.url)) {
        return;
      }
      // Read at send time, not page load: a login or refresh on this page replaces the cookie.
      var token = readCookie(config.cookie);
      if (token) {
        xhr.setRequestHeader(config.header, token);
      }
    }
  });
})();
