// The sign-in and second factors page (templates/gateway_api/passkeys.html): logging in (a password, then a
// second factor when the account has one: a code from the authenticator app, a recovery code or a passkey; or a
// passkey alone), the account's second factors (second-factors.js for the authenticator app; passkeys here) and
// logging out. Every action is a fetch() to the public API (signin-api.js).
(function () {
  "use strict";
  var page = window.Authmesh;
  var webauthn = page.webauthn;
  var $ = page.$;
  var say = page.say;
  var failed = page.failed;
  var pendingLogin = null; // {slug, mfaToken, methods} after a right password, when the account has a second factor

  function show(state) {
    $("logged-out").hidden = state !== "logged-out";
    $("second-factor").hidden = state !== "second-factor";
    $("logged-in").hidden = state !== "logged-in";
  }

  function loggedIn(reply, how) {
    page.setAccessToken(reply.accessToken);
    pendingLogin = null;
    show("logged-in");
    return refresh().then(function () {
      say("Logged in " + how + ".");
    });
  }

  // --- the account's second factors ------------------------------------------------------------------------

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function when(value) {
    return value ? new Date(value).toLocaleString() : "never";
  }

  function button(text, className, onClick) {
    var element = document.createElement("button");
    element.type = "button";
    element.textContent = text;
    element.className = className;
    element.addEventListener("click", onClick);
    return element;
  }

  function renderPasskeys(passkeys) {
    var body = $("passkeys").querySelector("tbody");
    body.textContent = "";
    passkeys.forEach(function (passkey) {
      var row = document.createElement("tr");
      row.dataset.id = passkey.id;
      cell(row, passkey.name).className = "passkey-name";
      cell(row, when(passkey.createdAt));
      cell(row, when(passkey.lastUsedAt)).className = "passkey-last-used";
      var actions = cell(row, "");
      actions.appendChild(
        button("Rename", "rename", function () {
          renamePasskey(passkey);
        })
      );
      actions.appendChild(
        button("Remove", "remove", function () {
          removePasskey(passkey);
        })
      );
      body.appendChild(row);
    });
    $("passkeys").hidden = passkeys.length === 0;
    $("no-passkeys").hidden = passkeys.length !== 0;
  }

  // GET /api/auth/mfa: the authenticator app's state, the recovery codes left and the passkeys.
  function refresh() {
    return page.api("GET", "/api/auth/mfa").then(function (status) {
      page.totp.render(status);
      renderPasskeys(status.passkeys);
    });
  }

  function renamePasskey(passkey) {
    var name = window.prompt("New name", passkey.name);
    if (!name) {
      return;
    }
    page
      .api("PATCH", "/api/auth/passkeys/" + passkey.id, { name: name })
      .then(refresh)
      .then(function () {
        say("Passkey renamed.");
      })
      .catch(failed);
  }

  function removePasskey(passkey) {
    if (!window.confirm("Remove the passkey " + passkey.name + "?")) {
      return;
    }
    page
      .api("DELETE", "/api/auth/passkeys/" + passkey.id)
      .then(refresh)
      .then(function () {
        say("Passkey removed.");
      })
      .catch(failed);
  }

  function register(event) {
    event.preventDefault();
    var name = $("passkey-name").value.trim();
    say("Follow your browser's prompt to create the passkey…");
    page
      .api("POST", "/api/auth/passkeys/register/options", {})
      .then(function (options) {
        return navigator.credentials.create({ publicKey: webauthn.creationOptions(options) });
      })
      .then(function (credential) {
        var body = Object.assign(webauthn.credentialJson(credential), { name: name });
        return page.api("POST", "/api/auth/passkeys/register/verify", body);
      })
      .then(function (passkey) {
        $("passkey-name").value = "";
        return refresh().then(function () {
          say("Passkey " + passkey.name + " added.");
        });
      })
      .catch(failed);
  }

  // --- logging in ------------------------------------------------------------------------------------------

  function passkeyLogin(slug, mfaToken) {
    say("Follow your browser's prompt to use your passkey…");
    return page
      .api("POST", "/api/login/passkey/options", slug ? { slug: slug } : {})
      .then(function (options) {
        return navigator.credentials.get({ publicKey: webauthn.requestOptions(options) });
      })
      .then(function (credential) {
        var body = webauthn.credentialJson(credential);
        if (mfaToken) {
          body.mfaToken = mfaToken;
        }
        return page.api("POST", "/api/login/passkey/verify", body);
      });
  }

  // The second step offers the account's methods: the app's code first (a recovery code as its alternative), and
  // a passkey.
  function offerSecondFactors(methods) {
    var hasTotp = methods.indexOf("totp") >= 0;
    var hasRecovery = methods.indexOf("recovery_code") >= 0;
    $("mfa-code-form").hidden = !hasTotp;
    $("mfa-recovery-form").hidden = hasTotp || !hasRecovery;
    $("mfa-use-recovery").hidden = !hasRecovery;
    $("mfa-use-code").hidden = !hasTotp;
    $("mfa-passkey").hidden = methods.indexOf("passkey") < 0;
    $("mfa-code").value = "";
    $("mfa-recovery-code").value = "";
    show("second-factor");
    var first = hasTotp ? $("mfa-code") : hasRecovery ? $("mfa-recovery-code") : $("mfa-passkey");
    first.focus();
  }

  function passwordLogin(event) {
    event.preventDefault();
    var slug = $("slug").value.trim();
    page
      .api("POST", "/api/login", { slug: slug, password: $("password").value })
      .then(function (reply) {
        $("password").value = "";
        if (reply.mfaRequired) {
          pendingLogin = { slug: slug, mfaToken: reply.mfaToken, methods: reply.methods || [] };
          offerSecondFactors(pendingLogin.methods);
          say("Password accepted: a second factor is needed.");
          return null;
        }
        return loggedIn(reply, "with a password");
      })
      .catch(failed);
  }

  // POST /api/login/mfa: the mfaToken with the app's `code` or a `recoveryCode`. A wrong one leaves the form up
  // (the token allows a few tries); Cancel starts over.
  function codeLogin(body, how) {
    if (!pendingLogin) {
      return;
    }
    body.mfaToken = pendingLogin.mfaToken;
    page
      .api("POST", "/api/login/mfa", body)
      .then(function (reply) {
        return loggedIn(reply, how);
      })
      .catch(failed);
  }

  function totpLogin(event) {
    event.preventDefault();
    var code = $("mfa-code").value.replace(/\s+/g, "");
    $("mfa-code").value = "";
    codeLogin({ code: code }, "with a password and a code from the app");
  }

  function recoveryLogin(event) {
    event.preventDefault();
    var code = $("mfa-recovery-code").value.trim();
    $("mfa-recovery-code").value = "";
    codeLogin({ recoveryCode: code }, "with a password and a recovery code");
  }

  function useRecoveryCode(useIt) {
    $("mfa-code-form").hidden = useIt;
    $("mfa-recovery-form").hidden = !useIt;
    (useIt ? $("mfa-recovery-code") : $("mfa-code")).focus();
  }

  function secondFactorPasskey() {
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

  function loggedOut(message) {
    page.setAccessToken(null);
    pendingLogin = null;
    page.totp.reset();
    show("logged-out");
    say(message);
  }

  function logout() {
    page
      .api("POST", "/api/auth/logout", {})
      .catch(function () {
        return null; // the session may be gone already: the page logs out all the same
      })
      .then(function () {
        loggedOut("Logged out.");
      });
  }

  function start() {
    $("password-form").addEventListener("submit", passwordLogin);
    $("passkey-login").addEventListener("click", passwordless);
    $("mfa-code-form").addEventListener("submit", totpLogin);
    $("mfa-recovery-form").addEventListener("submit", recoveryLogin);
    $("mfa-use-recovery").addEventListener("click", function () {
      useRecoveryCode(true);
    });
    $("mfa-use-code").addEventListener("click", function () {
      useRecoveryCode(false);
    });
    $("mfa-passkey").addEventListener("click", secondFactorPasskey);
    $("mfa-cancel").addEventListener("click", function () {
      loggedOut("Not logged in.");
    });
    $("register-form").addEventListener("submit", register);
    $("logout").addEventListener("click", logout);
    page.totp.start(refresh);
    if (!window.PublicKeyCredential) {
      say("This browser does not support passkeys.", true);
    }
    // A session from an earlier visit: the refresh cookie gives a new access token.
    if (!page.mayHaveSession()) {
      loggedOut("Not logged in.");
      return;
    }
    page
      .api("POST", "/api/auth/revalidate-credentials")
      .then(function (reply) {
        return loggedIn(reply, "(session restored)");
      })
      .catch(function () {
        loggedOut("Not logged in.");
      });
  }

  start();
})();
