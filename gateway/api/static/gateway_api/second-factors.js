// The authenticator app (TOTP) part of the sign-in page: its state, as GET /api/auth/mfa tells it; its enrolment:
// a new secret shown as a QR code and as text, confirmed with a code from the app, whose answer are the recovery
// codes, shown this once; and, with the password and a code, new recovery codes or the app turned off.
(function () {
  "use strict";
  var page = window.Authmesh;
  var $ = page.$;
  var SVG_NS = "http://www.w3.org/2000/svg";
  // What our QR codes are made of (segno's inline SVG); any other element or attribute is left out.
  var SVG_ELEMENTS = ["svg", "g", "path", "rect"];
  var SVG_ATTRIBUTES = ["width", "height", "viewBox", "class", "transform", "stroke", "fill", "d", "x", "y"];
  var onChange = null; // the page's refresh, after TOTP is turned on

  // A fresh copy of a parsed SVG element, made of known elements and attributes only (no script, no handler).
  function svgCopy(node) {
    if (node.namespaceURI !== SVG_NS || SVG_ELEMENTS.indexOf(node.localName) < 0) {
      return null;
    }
    var copy = document.createElementNS(SVG_NS, node.localName);
    Array.prototype.forEach.call(node.attributes, function (attribute) {
      if (SVG_ATTRIBUTES.indexOf(attribute.name) >= 0) {
        copy.setAttribute(attribute.name, attribute.value);
      }
    });
    Array.prototype.forEach.call(node.children, function (child) {
      var childCopy = svgCopy(child);
      if (childCopy) {
        copy.appendChild(childCopy);
      }
    });
    return copy;
  }

  // The server's `qrSvg` markup as an <svg> node. DOMParser's document runs no script and loads nothing; its HTML
  // parser puts <svg> in the SVG namespace (the markup has no xmlns).
  function qrCode(markup) {
    var parsed = new DOMParser().parseFromString(markup, "text/html");
    var svg = parsed.body.firstElementChild;
    var copy = svg ? svgCopy(svg) : null;
    if (copy && copy.localName === "svg") {
      copy.setAttribute("role", "img");
      copy.setAttribute("aria-label", "QR code for your authenticator app");
      return copy;
    }
    return null;
  }

  function render(status) {
    $("totp-state").textContent = status.totp ? "on" : "off";
    $("recovery-codes-left").textContent = String(status.recoveryCodesLeft);
    $("recovery-left-line").hidden = !status.totp;
    $("totp-setup").hidden = status.totp || !$("totp-enrol").hidden;
    $("totp-manage-form").hidden = !status.totp;
  }

  // Forgets what was shown: the secret being set up and the recovery codes (on logout, or once saved).
  function reset() {
    $("totp-enrol").hidden = true;
    $("totp-qr").textContent = "";
    $("totp-secret").textContent = "";
    $("totp-confirm-code").value = "";
    $("recovery-codes").hidden = true;
    $("recovery-code-list").textContent = "";
    $("manage-password").value = "";
    $("manage-code").value = "";
  }

  function setup() {
    page
      .api("POST", "/api/auth/mfa/totp/setup", {})
      .then(function (reply) {
        reset();
        var svg = qrCode(reply.qrSvg);
        if (svg) {
          $("totp-qr").appendChild(svg);
        }
        $("totp-secret").textContent = reply.secret;
        $("totp-enrol").hidden = false;
        $("totp-setup").hidden = true;
        $("totp-confirm-code").focus();
        page.say("Add the account to your authenticator app, then enter the code it shows.");
      })
      .catch(page.failed);
  }

  function showRecoveryCodes(codes) {
    var list = $("recovery-code-list");
    list.textContent = "";
    codes.forEach(function (code) {
      var item = document.createElement("li");
      item.textContent = code;
      list.appendChild(item);
    });
    $("recovery-codes").hidden = false;
  }

  function confirm(event) {
    event.preventDefault();
    var code = $("totp-confirm-code").value.trim();
    page
      .api("POST", "/api/auth/mfa/totp/confirm", { code: code })
      .then(function (reply) {
        reset();
        showRecoveryCodes(reply.recoveryCodes);
        return onChange();
      })
      .then(function () {
        page.say("Authenticator app on: save your recovery codes now.");
      })
      .catch(page.failed);
  }

  function cancel() {
    // Nothing is active until confirmed: the unconfirmed secret is simply forgotten here.
    reset();
    $("totp-setup").hidden = false;
    page.say("Authenticator app not set up.");
  }

  // One form, two buttons: POST /api/auth/mfa/recovery-codes or DELETE /api/auth/mfa/totp, both with the password
  // and a TOTP or recovery code.
  function manage(event) {
    event.preventDefault();
    var turnOff = event.submitter !== null && event.submitter.id === "totp-off";
    if (turnOff && !window.confirm("Turn the authenticator app off? Its recovery codes stop working too.")) {
      return;
    }
    var body = { password: $("manage-password").value, code: $("manage-code").value.trim() };
    var request = turnOff
      ? page.api("DELETE", "/api/auth/mfa/totp", body)
      : page.api("POST", "/api/auth/mfa/recovery-codes", body);
    request
      .then(function (reply) {
        reset();
        if (!turnOff) {
          showRecoveryCodes(reply.recoveryCodes);
        }
        return onChange();
      })
      .then(function () {
        page.say(turnOff ? "Authenticator app off." : "New recovery codes: save them now; the earlier ones no longer work.");
      })
      .catch(page.failed);
  }

  function start(refresh) {
    onChange = refresh;
    $("totp-setup").addEventListener("click", setup);
    $("totp-confirm-form").addEventListener("submit", confirm);
    $("totp-setup-cancel").addEventListener("click", cancel);
    $("totp-manage-form").addEventListener("submit", manage);
    $("recovery-codes-saved").addEventListener("click", function () {
      $("recovery-codes").hidden = true;
      $("recovery-code-list").textContent = "";
    });
  }

  page.totp = { start: start, render: render, reset: reset };
})();
