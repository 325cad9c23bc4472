// Shared by the scripts of the sign-in page (templates/gateway_api/passkeys.html): its config, its status line and
// fetch() to the public API. The access token lives in this page's memory only; a reload gets a new one from the
// refresh cookie. Unsafe requests echo the CSRF cookie in the CSRF header, as every client of the gateway does.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("passkeys-config").textContent);
  var accessToken = null;

  function $(id) {
    return document.getElementById(id);
  }

  function say(text, isError) {
    var status = $("status");
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  function failed(error) {
    say(error.message || String(error), true);
  }

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split(";") : [];
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i].trim();
      if (part.indexOf(name + "=") === 0) {
        return decodeURIComponent(part.substring(name.length + 1));
      }
    }
    return null;
  }

  // The answer's JSON, or null for an empty answer (204, or a 200 that has nothing to say); an error answer
  // becomes an Error with the envelope's message.
  function api(method, path, body) {
    var headers = { Accept: "application/json" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    if (accessToken) {
      headers.Authorization = "Bearer " + accessToken;
    }
    var csrf = readCookie(config.csrfCookie);
    if (method !== "GET" && csrf) {
      headers[config.csrfHeader] = csrf;
    }
    return fetch(path, {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = text ? JSON.parse(text) : null;
        if (!response.ok) {
          var message = data && (Array.isArray(data.message) ? data.message.join("; ") : data.message);
          throw new Error(message || response.statusText || "HTTP " + response.status);
        }
        return data;
      });
    });
  }

  window.Authmesh = {
    $: $,
    say: say,
    failed: failed,
    api: api,
    setAccessToken: function (token) {
      accessToken = token;
    },
    // The CSRF cookie comes with the refresh cookie: without it there is no session to restore.
    mayHaveSession: function () {
      return readCookie(config.csrfCookie) !== null;
    },
  };
})();
