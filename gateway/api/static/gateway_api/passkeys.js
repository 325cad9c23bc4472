// The passkeys page (templates/gateway_api/passkeys.html): every action is a fetch() to the public API.
// The access token lives in this page's memory only; a reload gets a new one from the refresh cookie. Unsafe
// requests echo the CSRF cookie in the CSRF header, as every client of the gateway does.
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("passkeys-config").textContent);
  var accessToken = null;
  var pendingLogin = null; // {slug, mfaToken} after a right password, when the account has a second factor

  function $(id) {
    return document.getElementById(id);
  }

  function say(text, isError) {
    var status = $("status");
    status.textContent = text;
    status.className = isError ? "error" : "";
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

  // --- base64url <-> bytes (WebAuthn's JSON encoding) ---------------------------------------------------------

  function toBytes(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) {
      base64 += "=";
    }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBytes(item.id), transports: item.transports };
    });
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    options.excludeCredentials = descriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.allowCredentials = descriptors(json.allowCredentials);
    return options;
  }

  function credentialJson(credential) {
    var response = credential.response;
    var body = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: { clientDataJSON: toText(response.clientDataJSON) },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
    if (credential.authenticatorAttachment) {
      body.authenticatorAttachment = credential.authenticatorAttachment;
    }
    if (response.attestationObject) {
      body.response.attestationObject = toText(response.attestationObject);
      body.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      body.response.authenticatorData = toText(response.authenticatorData);
      body.response.signature = toText(response.signature);
      if (response.userHandle) {
        body.response.userHandle = toText(response.userHandle);
      }
    }
    return body;
  }

  // --- the API ---------------------------------------------------------------------------------------------

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
      if (response.status === 204) {
        return null;
      }
      return response.json().then(function (data) {
        if (!response.ok) {
          var message = Array.isArray(data.message) ? data.message.join("; ") : data.message;
          throw new Error(message || response.statusText);
        }
        return data;
      });
    });
  }

  function show(state) {
    $("logged-out").hidden = state !== "logged-out";
    $("second-factor").hidden = state !== "second-factor";
    $("logged-in").hidden = state !== "logged-in";
  }

  function loggedIn(reply, how) {
    accessToken = reply.accessToken;
    pendingLogin = null;
    show("logged-in");
    return listPasskeys().then(function () {
      say("Logged in " + how + ".");
    });
  }

  function failed(error) {
    say(error.message || String(error), true);
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function when(value) {
    return value ? new Date(value).toLocaleString() : "never";
  }

  function listPasskeys() {
    return api("GET", "/api/auth/passkeys").then(function (passkeys) {
      var body = $("passkeys").querySelector("tbody");
      body.textContent = "";
      passkeys.forEach(function (passkey) {
        var row = document.createElement("tr");
        row.dataset.id = passkey.id;
        cell(row, passkey.name).className = "passkey-name";
        cell(row, when(passkey.createdAt));
        cell(row, when(passkey.lastUsedAt)).className = "passkey-last-used";
        var actions = cell(row, "");
        var rename = document.createElement("button");
        rename.type = "button";
        rename.textContent = "Rename";
        rename.className = "rename";
        rename.addEventListener("click", function () {
          renamePasskey(passkey);
        });
        var remove = document.createElement("button");
        remove.type = "button";
        remove.textContent = "Remove";
        remove.className = "remove";
        remove.addEventListener("click", function () {
          removePasskey(passkey);
        });
        actions.appendChild(rename);
        actions.appendChild(remove);
        body.appendChild(row);
      });
      $("passkeys").hidden = passkeys.length === 0;
      $("no-passkeys").hidden = passkeys.length !== 0;
    });
  }

  function renamePasskey(passkey) {
    var name = window.prompt("New name", passkey.name);
    if (!name) {
      return;
    }
    api("PATCH", "/api/auth/passkeys/" + passkey.id, { name: name })
      .then(listPasskeys)
      .then(function () {
        say("Passkey renamed.");
      })
      .catch(failed);
  }

  function removePasskey(passkey) {
    if (!window.confirm("Remove the passkey " + passkey.name + "?")) {
      return;
    }
    api("DELETE", "/api/auth/passkeys/" + passkey.id)
      .then(listPasskeys)
      .then(function () {
        say("Passkey removed.");
      })
      .catch(failed);
  }

  // --- ceremonies ------------------------------------------------------------------------------------------

  function register(event) {
    event.preventDefault();
    var name = $("passkey-name").value.trim();
    say("Follow your browser's prompt to create the passkey…");
    api("POST", "/api/auth/passkeys/register/options", {})
      .then(function (options) {
        return navigator.credentials.create({ publicKey: creationOptions(options) });
      })
      .then(function (credential) {
        return api("POST", "/api/auth/passkeys/register/verify", Object.assign(credentialJson(credential), { name: name }));
      })
      .then(function (passkey) {
        $("passkey-name").value = "";
        return listPasskeys().then(function () {
          say("Passkey " + passkey.name + " added.");
        });
      })
      .catch(failed);
  }

  function passkeyLogin(slug, mfaToken) {
    say("Follow your browser's prompt to use your passkey…");
    return api("POST", "/api/login/passkey/options", slug ? { slug: slug } : {})
      .then(function (options) {
        return navigator.credentials.get({ publicKey: requestOptions(options) });
      })
      .then(function (credential) {
        var body = credentialJson(credential);
        if (mfaToken) {
          body.mfaToken = mfaToken;
        }
        return api("POST", "/api/login/passkey/verify", body);
      });
  }

  function passwordLogin(event) {
    event.preventDefault();
    var slug = $("slug").value.trim();
    api("POST", "/api/login", { slug: slug, password: $("password").value })
      .then(function (reply) {
        $("password").value = "";
        if (reply.mfaRequired) {
          pendingLogin = { slug: slug, mfaToken: reply.mfaToken, methods: reply.methods || [] };
          show("second-factor");
          $("mfa-passkey").hidden = pendingLogin.methods.indexOf("passkey") < 0;
          say(
            pendingLogin.methods.indexOf("passkey") < 0
              ? "This account needs a code from its authenticator app; this page only offers passkeys."
              : "Password accepted: a second factor is needed."
          );
          return null;
        }
        return loggedIn(reply, "with a password");
      })
      .catch(failed);
  }

  function secondFactor() {
    if (!pendingLogin) {
      return;
    }
    passkeyLogin(pendingLogin.slug, pendingLogin.mfaToken)
      .then(function (reply) {
        return loggedIn(reply, "with a password and a passkey");
      })
      .catch(failed);
  }

  function passwordless() {
    passkeyLogin($("slug").value.trim(), null)
      .then(function (reply) {
        return loggedIn(reply, "with a passkey");
      })
      .catch(failed);
  }

  function logout() {
    api("POST", "/api/auth/logout", {})
      .catch(function () {
        return null; // the session may be gone already: the page logs out all the same
      })
      .then(function () {
        accessToken = null;
        show("logged-out");
        say("Logged out.");
      });
  }

  function start() {
    $("password-form").addEventListener("submit", passwordLogin);
    $("passkey-login").addEventListener("click", passwordless);
    $("mfa-passkey").addEventListener("click", secondFactor);
    $("mfa-cancel").addEventListener("click", function () {
      pendingLogin = null;
      show("logged-out");
      say("Not logged in.");
    });
    $("register-form").addEventListener("submit", register);
    $("logout").addEventListener("click", logout);
    if (!window.PublicKeyCredential) {
      say("This browser does not support passkeys.", true);
    }
    // A session from an earlier visit: the refresh cookie gives a new access token.
    if (!readCookie(config.csrfCookie)) {
      show("logged-out");
      say("Not logged in.");
      return;
    }
    api("POST", "/api/auth/revalidate-credentials")
      .then(function (reply) {
        return loggedIn(reply, "(session restored)");
      })
      .catch(function () {
        show("logged-out");
        say("Not logged in.");
      });
  }

  start();
})();
