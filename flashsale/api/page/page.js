// The waiting-room page (GET /wait/{sale}#token=...): join the sale's waiting room, poll
// it every poll_after_seconds, offer "Buy" once admitted, then show the order.
//
// The shopper's token comes in the URL fragment, which browsers never send to a server.
// It is taken out of the address bar at once and kept in this tab's sessionStorage (so a
// reload keeps the place), and sent only in the Authorization header of calls to this
// same origin, without cookies or a Referer.
(() => {
  "use strict";

  const sale = decodeURIComponent(location.pathname.split("/").pop() || "");
  const queuePath = `/v1/sales/${encodeURIComponent(sale)}/queue`;
  const $ = (id) => document.getElementById(id);

  // ---- the token ---------------------------------------------------------------------
  const tokenKey = `flashsale.token.${sale}`;
  const token = (() => {
    const fromLink = new URLSearchParams(location.hash.slice(1)).get("token");
    if (fromLink) {
      history.replaceState(null, "", location.pathname + location.search);
      try {
        sessionStorage.setItem(tokenKey, fromLink);
      } catch (_) {
        // Storage refused (private mode): the page still works until it is reloaded.
      }
      return fromLink;
    }
    try {
      return sessionStorage.getItem(tokenKey);
    } catch (_) {
      return null;
    }
  })();

  // ---- talking to the API ------------------------------------------------------------
  // Every answer as {status, data, retryAfter, serverNow}; status 0: no answer at all.
  // The token goes with every call but the public read of the sale (`anonymous`).
  async function call(method, path, body, extraHeaders, anonymous) {
    const headers = { Accept: "application/json" };
    if (token && !anonymous) headers.Authorization = `Bearer ${token}`;
    Object.assign(headers, extraHeaders || {});
    const init = {
      method,
      headers,
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      return { status: 0, data: null, retryAfter: 0, serverNow: NaN };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      // Not JSON (a proxy's error page): the status alone decides.
    }
    const retryAfter = Number(response.headers.get("Retry-After"));
    return {
      status: response.status,
      data,
      retryAfter: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 0,
      serverNow: Date.parse(response.headers.get("Date") || ""),
    };
  }

  const codeOf = (answer) => (answer.data && answer.data.error) || "";

  // ---- what the shopper sees ---------------------------------------------------------
  const BADGES = {
    loading: "Connecting",
    waiting: "In line",
    draw: "In the draw",
    not_open: "Not open yet",
    admitted: "Your turn",
    open: "Open",
    order: "Order placed",
    sold_out: "Sold out",
    expired: "Turn over",
    ended: "Sale over",
    limit: "Limit reached",
    signin: "Signed out",
    unknown: "Not found",
    error: "Problem",
  };

  const KEEP_OPEN = "Keep this page open: it updates by itself.";
  const HINTS = {
    loading: KEEP_OPEN,
    waiting: KEEP_OPEN,
    draw: KEEP_OPEN,
    not_open: KEEP_OPEN,
    admitted: KEEP_OPEN,
    order: "This page keeps your order’s status up to date.",
  };

  // Only changed text is written: a screen reader then announces real changes alone.
  function setText(id, text) {
    const node = $(id);
    if (node.textContent !== text) node.textContent = text;
  }

  function show(state, headline, message) {
    document.body.dataset.state = state;
    setText("badge", BADGES[state] || "");
    setText("headline", headline);
    setText("message", message);
    setText("hint", HINTS[state] || "");
    $("hint").hidden = !HINTS[state];
    $("queue").hidden = !["waiting", "draw"].includes(state);
    $("turn").hidden = !["admitted", "open"].includes(state);
    $("order").hidden = state !== "order";
    $("countdown").hidden = $("countdown-label").hidden = state !== "admitted";
    const title = state === "admitted" || state === "open" ? "Your turn! Buy now" : headline;
    document.title = `${title} · ${product}`;
  }

  let noteTimer = 0;
  function note(text) {
    clearTimeout(noteTimer);
    setText("note", text || "");
    $("note").hidden = !text;
  }

  function countdownNote(template, seconds) {
    // "Trying again in 3 s", counted down on screen.
    let left = Math.max(1, Math.round(seconds));
    const tick = () => {
      note(template.replace("{s}", `${left} s`));
      left -= 1;
      if (left > 0) noteTimer = setTimeout(tick, 1000);
    };
    tick();
  }

  const clock = (iso) =>
    new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

  function duration(seconds) {
    if (seconds < 60) return "under 1 min";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `about ${minutes} min`;
    const hours = Math.floor(minutes / 60);
    const rest = minutes % 60;
    return rest ? `about ${hours} h ${rest} min` : `about ${hours} h`;
  }

  function percent(chance) {
    if (chance >= 1) return "100%";
    if (chance > 0 && chance < 0.01) return "under 1%";
    return `${Math.floor(chance * 100)}%`;
  }

  // ---- the sale's name and start, shown above the queue (no token needed) ------------
  let product = "Waiting room";
  let startsAt = null;
  const salePath = `/v1/sales/${encodeURIComponent(sale)}`;
  const saleRead = call("GET", salePath, undefined, {}, true).then((answer) => {
    if (answer.status === 200 && answer.data) {
      product = answer.data.sku ? `${answer.data.sku} · waiting room` : product;
      startsAt = answer.data.starts_at || null;
      setText("product", product);
    }
  });

  // ---- the queue ---------------------------------------------------------------------
  let queueTimer = 0;
  let failures = 0;
  let finished = false; // the queue has nothing more to say: stop polling it

  function later(seconds, next) {
    clearTimeout(queueTimer);
    if (!finished) queueTimer = setTimeout(next, seconds * 1000);
  }

  function stop() {
    finished = true;
    clearTimeout(queueTimer);
    stopCountdown();
  }

  // A network failure: try again after 1, 2, 4 ... 30 s.
  function backoff() {
    failures += 1;
    return Math.min(30, 2 ** (failures - 1));
  }

  async function join() {
    const answer = await call("POST", queuePath);
    if (answer.status === 202) return onPlace(answer);
    onRefusal(answer, join);
  }

  async function poll() {
    const answer = await call("GET", queuePath);
    if (answer.status === 200) return onPlace(answer);
    if (codeOf(answer) === "not_in_queue") return join(); // the room forgot us: join again
    onRefusal(answer, poll);
  }

  function onPlace(answer) {
    failures = 0;
    note("");
    const place = answer.data;
    switch (place.status) {
      case "waiting":
        showWaiting(place);
        break;
      case "admitted":
        showAdmitted(place, answer.serverNow);
        break;
      case "expired":
        stop();
        show(
          "expired",
          "Your turn has passed",
          "You were let in, but the time to buy ran out. Your turn went to the next shopper.",
        );
        return;
      case "sold_out":
        return soldOut();
      default:
        show("error", "Something unexpected happened", `The store answered “${place.status}”.`);
    }
    later(place.poll_after_seconds || 1, poll);
  }

  function showWaiting(place) {
    stopCountdown();
    if (place.position === null) {
      const when = startsAt ? ` at ${clock(startsAt)}` : "";
      show(
        "draw",
        "You are in the draw",
        `Places in line are drawn at random when the sale starts${when}. ` +
          "Everyone who joined before then has the same chance.",
      );
      setText("position", "drawn soon");
      setText("ahead", "–");
      setText("wait", "–");
    } else {
      show("waiting", "You are in line", "We will let you in when it is your turn.");
      setText("position", `#${place.position}`);
      setText("ahead", String(place.ahead));
      setText("wait", duration(place.estimated_wait_seconds || 0));
    }
    setText("chance", percent(place.chance));
    const bar = $("chance-bar");
    bar.value = Math.round(place.chance * 100);
    bar.textContent = percent(place.chance);
  }

  // ---- admitted: the countdown and "Buy" ---------------------------------------------
  let deadline = 0; // performance.now() when the turn ends
  let countdownTimer = 0;

  function showAdmitted(place, serverNow) {
    const wasAdmitted = document.body.dataset.state === "admitted";
    show(
      "admitted",
      "It’s your turn!",
      "You can buy now. Buy before the time runs out, or your turn goes to the next shopper.",
    );
    if (place.admitted_until) {
      // The server's clock, not this device's: the time left as the answer said it.
      const now = Number.isNaN(serverNow) ? Date.now() : serverNow;
      deadline = performance.now() + (Date.parse(place.admitted_until) - now);
      startCountdown();
    }
    if (!wasAdmitted && !buying) $("buy").focus();
  }

  function startCountdown() {
    if (countdownTimer) return;
    const tick = () => {
      const left = Math.max(0, Math.round((deadline - performance.now()) / 1000));
      const minutes = Math.floor(left / 60);
      const seconds = String(left % 60).padStart(2, "0");
      setText("countdown", `${minutes}:${seconds}`);
    };
    tick();
    countdownTimer = setInterval(tick, 250);
  }

  function stopCountdown() {
    clearInterval(countdownTimer);
    countdownTimer = 0;
  }

  // The same key for every retry of one purchase whose outcome is unknown (no answer,
  // 429, 503), so it is bought once at most; a new one after a clear refusal.
  let purchaseKey = null;
  let buying = false;

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function setBuying(on) {
    buying = on;
    const button = $("buy");
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
    setText("buy", on ? "Buying…" : "Buy");
  }

  async function buy() {
    if (buying) return;
    setBuying(true);
    purchaseKey = purchaseKey || newKey();
    const answer = await call(
      "POST",
      `/v1/sales/${encodeURIComponent(sale)}/reservations`,
      { quantity: 1 },
      { "Idempotency-Key": purchaseKey },
    );
    const code = codeOf(answer);
    if (answer.status === 202) {
      stop();
      return showOrder(answer.data, true);
    }
    if (answer.status === 0 || answer.status === 429 || answer.status === 503) {
      if (answer.data && answer.data.order_id) {
        // It may have happened: the order tells (not found: it did not, and never will).
        const placed = await call("GET", `/v1/orders/${encodeURIComponent(answer.data.order_id)}`);
        if (placed.status === 200) {
          stop();
          return showOrder(placed.data, true);
        }
      }
      // The same key again: bought once at most, whatever happened to this try.
      const wait = answer.retryAfter || backoff();
      countdownNote("The store is very busy. Trying your purchase again in {s}…", wait);
      setTimeout(() => {
        setBuying(false);
        const state = document.body.dataset.state;
        if (state === "admitted" || state === "open") buy(); // not once the turn is over
      }, wait * 1000);
      return;
    }
    purchaseKey = null;
    setBuying(false);
    switch (code) {
      case "not_admitted":
        note("The store has not let you in, or your turn has just passed. Checking your place…");
        poll();
        return;
      case "sold_out":
        note("Every unit is taken right now. If one comes back, you can still get it.");
        return;
      case "limit_reached":
        stop();
        show("limit", "You already have one", "You hold as many as this sale allows per shopper.");
        return;
      case "not_started":
        note("The sale has not started yet. Try again in a moment.");
        return;
      case "paused":
        note("The sale is paused for a moment. Try again shortly.");
        return;
      default:
        onRefusal(answer, null);
    }
  }

  // ---- the order ---------------------------------------------------------------------
  const ORDER_STATUS = {
    reserved: ["Reserved", "We are confirming your order."],
    pending_payment: ["Waiting for payment", "Pay in the store before the time below."],
    paid: ["Paid", "Your order is paid. Thank you!"],
    expired: ["Expired", "It was not paid in time, so the unit went back on sale."],
    rejected: ["Not confirmed", "We could not confirm this order. You have not been charged."],
  };
  const FINAL = new Set(["paid", "expired", "rejected"]);

  function showOrder(order, fresh) {
    const [label, explain] = ORDER_STATUS[order.status] || [order.status, ""];
    const headline = order.status === "paid" ? "It’s yours!" : "You got one!";
    show("order", headline, explain);
    setText("order-id", order.order_id);
    setText("order-status", label);
    setText("order-expires", order.expires_at ? clock(order.expires_at) : "–");
    if (fresh) readOrder(order.order_id, 1);
  }

  // GET /v1/orders/{id}: the order as it stands, read again until it is final: every 2 s
  // while it is only accepted (stored within a second or so), then every 10 s.
  async function readOrder(orderId, attempt) {
    const answer = await call("GET", `/v1/orders/${encodeURIComponent(orderId)}`);
    if (answer.status === 200) {
      note("");
      showOrder(answer.data, false);
      if (!FINAL.has(answer.data.status)) {
        const again = answer.data.status === "reserved" ? 2000 : 10000;
        setTimeout(() => readOrder(orderId, 1), again);
      }
      return;
    }
    if (answer.status === 401) return onRefusal(answer, null);
    if (answer.status === 404 && attempt > 5) {
      stop();
      show(
        "error",
        "Your purchase did not go through",
        "No unit was reserved for you. You can try again from the store.",
      );
      return;
    }
    // Not readable yet, or the store is busy: look again shortly.
    const wait = answer.retryAfter || Math.min(10, attempt);
    if (answer.status !== 404) countdownNote("Checking your order again in {s}…", wait);
    setTimeout(() => readOrder(orderId, attempt + 1), wait * 1000);
  }

  // ---- refusals of the queue (and of a purchase, past its own cases) -----------------
  function soldOut() {
    stop();
    show("sold_out", "Sold out", "Every unit has been sold. Thank you for waiting.");
  }

  function signedOut() {
    stop();
    show(
      "signin",
      "Please sign in again",
      "Your sign-in for this page is missing or has expired. Go back to the store and " +
        "open the waiting room from there.",
    );
  }

  function onRefusal(answer, again) {
    const code = codeOf(answer);
    if (answer.status === 0) {
      if (again) {
        const wait = backoff();
        countdownNote("We lost the connection. Trying again in {s}…", wait);
        later(wait, again);
      }
      return;
    }
    if (answer.status === 401) return signedOut();
    if (answer.status === 503 || answer.status === 429) {
      const wait = answer.retryAfter || backoff();
      if (again) {
        countdownNote("The store is very busy. Trying again in {s}…", wait);
        later(wait, again);
      }
      return;
    }
    switch (code) {
      case "sold_out":
        return soldOut();
      case "ended":
        stop();
        return show("ended", "The sale is over", "This sale has ended.");
      case "unknown_sale":
        stop();
        return show(
          "unknown",
          "This sale does not exist",
          "Check the link, or open the waiting room from the store again.",
        );
      case "not_open":
        show(
          "not_open",
          "The waiting room is not open yet",
          "Keep this page open: it lets you in line as soon as it opens.",
        );
        return later(10, join);
      case "no_waiting_room":
        stop();
        return show("open", "No waiting needed", "This sale has no line. You can buy now.");
      default:
        stop();
        show(
          "error",
          "Something went wrong",
          (answer.data && answer.data.detail) || `The store answered ${answer.status}.`,
        );
    }
  }

  // ---- start -------------------------------------------------------------------------
  $("buy").addEventListener("click", buy);
  if (!token) {
    signedOut();
    return;
  }
  // The sale's name and start first (one quick read), so the first screen names them.
  Promise.race([saleRead, new Promise((resolve) => setTimeout(resolve, 1500))]).then(join);
})();
