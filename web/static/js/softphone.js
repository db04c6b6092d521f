// Browser calling with the Twilio Voice JS SDK (loaded only when Twilio is configured).
// The browser never sends a phone number: it connects with the id of the call the console
// created, and the server's TwiML dials the claimant's number on record.
(function () {
  "use strict";

  var device = null;
  var activeCall = null;
  var incomingCall = null; // a claimant ringing back, ringing this browser (issue 14)

  function setStatus(text) {
    var el = document.getElementById("softphone-status");
    if (el) el.textContent = text;
  }

  function showControls(connected) {
    var mute = document.getElementById("twilio-mute");
    var hangup = document.getElementById("twilio-hangup");
    if (mute) mute.hidden = !connected;
    if (hangup) hangup.hidden = !activeCall;
  }

  function fetchToken() {
    return window
      .fetch("/console/calls/token", {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      })
      .then(function (response) {
        if (!response.ok) throw new Error("token request failed: " + response.status);
        return response.json();
      });
  }

  function getDevice() {
    if (device) return Promise.resolve(device);
    return fetchToken().then(function (body) {
      device = new window.Twilio.Device(body.token, {
        logLevel: "warn",
        codecPreferences: ["opus", "pcmu"],
      });
      // No SDK ringtones: they load from Twilio's CDN, which the CSP does not allow.
      if (device.audio) {
        device.audio.incoming(false);
        device.audio.outgoing(false);
        device.audio.disconnect(false);
      }
      device.on("tokenWillExpire", function () {
        fetchToken().then(function (fresh) {
          device.updateToken(fresh.token);
        });
      });
      device.on("error", function (error) {
        setStatus("Phone error: " + (error && error.message ? error.message : "unknown"));
      });
      device.on("incoming", ringing);
      return device;
    });
  }

  function connect(phone) {
    if (phone.dataset.connecting === "true") return;
    phone.dataset.connecting = "true";
    setStatus("Dialling…");
    getDevice()
      .then(function (dev) {
        return dev.connect({ params: { callId: phone.dataset.callId } });
      })
      .then(function (call) {
        activeCall = call;
        showControls(false);
        call.on("ringing", function () {
          setStatus("Ringing…");
        });
        call.on("accept", function () {
          setStatus("Connected");
          showControls(true);
        });
        ["disconnect", "cancel", "reject"].forEach(function (name) {
          call.on(name, function () {
            setStatus("Call ended");
            activeCall = null;
            showControls(false);
          });
        });
        call.on("error", function (error) {
          setStatus("Call error: " + (error && error.message ? error.message : "unknown"));
        });
      })
      .catch(function () {
        setStatus("The call could not start. Check your microphone permission and network.");
      });
  }

  // A claimant ringing back: the server rang this agent's identity and the console shows
  // their context (the inbound-call live event); the agent answers with the panel's button.
  function ringing(call) {
    incomingCall = call;
    setStatus("Ringing…");
    call.on("accept", function () {
      activeCall = call;
      setStatus("Connected");
      var answer = document.getElementById("twilio-answer");
      if (answer) answer.hidden = true;
      showControls(true);
    });
    ["disconnect", "cancel", "reject"].forEach(function (name) {
      call.on(name, function () {
        setStatus("Call ended");
        activeCall = null;
        incomingCall = null;
        showControls(false);
      });
    });
  }

  // Agents' consoles register the device at once, so that calls can reach them.
  function registerForIncoming() {
    var console_ = document.querySelector('.console[data-voice="twilio"][data-incoming="true"]');
    if (!console_ || !window.Twilio || !window.Twilio.Device) return;
    getDevice()
      .then(function (dev) {
        return dev.register();
      })
      .catch(function () {
        setStatus("The phone could not register for incoming calls.");
      });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-action]") : null;
    if (button && button.dataset.action === "answer-incoming") {
      if (incomingCall) incomingCall.accept();
      return;
    }
    if (button && button.dataset.action === "hangup" && incomingCall && !activeCall) {
      incomingCall.reject(); // declined while it rings: Twilio tells the inbound webhooks
      return;
    }
    if (!button || !activeCall) return;
    if (button.dataset.action === "hangup") activeCall.disconnect();
    if (button.dataset.action === "mute") {
      var muted = !activeCall.isMuted();
      activeCall.mute(muted);
      button.textContent = muted ? "Unmute" : "Mute";
    }
  });

  function scan() {
    var phone = document.querySelector('#softphone[data-provider="twilio"][data-autoconnect="true"]');
    if (phone && window.Twilio && window.Twilio.Device) connect(phone);
  }

  document.addEventListener("htmx:afterSettle", scan);
  document.addEventListener("DOMContentLoaded", scan);
  document.addEventListener("DOMContentLoaded", registerForIncoming);
})();
