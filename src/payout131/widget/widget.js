/*
 * payout131 tokenization widget: a recipient types a BIK and an account number, the widget
 * checks them as they are typed, sends them to the bank with the partner's public token and
 * hands back {token, masked_account, bik, bank_name}; or, with kind: "card", a card number,
 * handing back {token, number_hash, brand, bin, last4}. Plain JavaScript, no build step.
 *
 *   <div id="bank-details"></div>
 *   <script src="https://BANK/widget/widget.js"></script>
 *   <script>
 *     new Payout131Widget({
 *       container: "#bank-details",
 *       publicToken: "<from the token method>",
 *       onSuccess: function (result) { ... },
 *       onError: function (error) { ... }
 *     }).render();
 *   </script>
 *
 * Options and the callback payloads are described in docs/widget.md.
 */
(function (global) {
  "use strict";

  var SCRIPT = document.currentScript;
  var BASE = SCRIPT && SCRIPT.src ? new URL(".", SCRIPT.src).href : "/widget/";
  var WEIGHTS = [7, 1, 3];
  var MESSAGE_SOURCE = "payout131-widget";

  var TEXT = {
    ru: {
      title: "Реквизиты для выплаты",
      bik: "БИК банка",
      bikHint: "9 цифр, есть в реквизитах счёта",
      account: "Номер счёта",
      accountHint: "20 цифр",
      submit: "Сохранить реквизиты",
      sending: "Отправляем…",
      digitsLeft: "Введено {n} из 20 цифр",
      bankLooking: "Ищем банк…",
      bikFormat: "БИК состоит из 9 цифр.",
      bikDigits: "В БИК могут быть только цифры.",
      bikUnknown: "Банка с БИК {bik} нет в справочнике Банка России. Проверьте БИК.",
      bikRefused: {
        liquidation: "Банк {bank} ликвидируется и не может принимать выплаты.",
        restricted: "Банк {bank} ограничен в участии в расчётах и не может принимать выплаты.",
        closed: "Банк {bank} исключён из справочника Банка России и не может принимать выплаты."
      },
      bikRequired: "Введите БИК банка.",
      accountRequired: "Введите номер счёта.",
      accountDigits: "В номере счёта могут быть только цифры.",
      accountLength: "Номер счёта состоит из 20 цифр, а введено {n}.",
      accountPrefix:
        "На счёт, который начинается с {prefix}, выплату получить нельзя. Нужен счёт " +
        "физического лица (40817…), ИП (40802…) или организации (40702…).",
      accountKey:
        "Номер счёта не сходится с БИК: контрольная цифра неверна. Скорее всего, в счёте " +
        "или в БИК опечатка — сверьте их с реквизитами.",
      accountNeedsBik: "Сначала введите БИК: по нему проверяется номер счёта.",
      spent: "Эта форма уже была отправлена. Обновите страницу, чтобы ввести реквизиты заново.",
      expired: "Срок действия формы истёк. Обновите страницу.",
      unknown: "Форму нельзя отправить: ключ доступа недействителен. Обновите страницу.",
      network: "Не удалось связаться с банком. Проверьте подключение и попробуйте ещё раз.",
      server: "Банк не принял реквизиты: {description}",
      done: "Готово: счёт {masked} в банке «{bank}» сохранён.",
      cardTitle: "Карта для выплаты",
      card: "Номер карты",
      cardHint: "16 цифр на лицевой стороне карты (бывает от 14 до 19)",
      cardSubmit: "Сохранить карту",
      cardRequired: "Введите номер карты.",
      cardDigits: "В номере карты могут быть только цифры.",
      cardLength: "В номере карты от 14 до 19 цифр, а введено {n}.",
      cardLuhn: "Номер карты введён с ошибкой: не сходится контрольная цифра. Сверьте его с картой.",
      cardBrand: "На карты, которые начинаются с {prefix}, выплату получить нельзя: нужна карта Мир, Visa, Mastercard или UnionPay.",
      cardDone: "Готово: карта {brand} ···· {last4} сохранена."
    },
    en: {
      title: "Bank details for your payout",
      bik: "Bank BIK",
      bikHint: "9 digits, shown in your account details",
      account: "Account number",
      accountHint: "20 digits",
      submit: "Save bank details",
      sending: "Sending…",
      digitsLeft: "{n} of 20 digits typed",
      bankLooking: "Looking up the bank…",
      bikFormat: "A BIK has 9 digits.",
      bikDigits: "A BIK has digits only.",
      bikUnknown: "There is no bank with BIK {bik} in the Bank of Russia directory. Check the BIK.",
      bikRefused: {
        liquidation: "{bank} is being liquidated and cannot receive payouts.",
        restricted: "{bank} is restricted in the Bank of Russia directory and cannot receive payouts.",
        closed: "{bank} has been removed from the Bank of Russia directory and cannot receive payouts."
      },
      bikRequired: "Type the bank's BIK.",
      accountRequired: "Type the account number.",
      accountDigits: "An account number has digits only.",
      accountLength: "An account number has 20 digits; you typed {n}.",
      accountPrefix:
        "An account starting with {prefix} cannot receive payouts. Use a personal account " +
        "(40817…), a sole trader's (40802…) or a company's (40702…).",
      accountKey:
        "The account number does not match the BIK: its check digit is wrong. There is " +
        "probably a typo in the account or the BIK; compare them with your bank details.",
      accountNeedsBik: "Type the BIK first: the account number is checked against it.",
      spent: "This form has already been sent. Reload the page to enter the details again.",
      expired: "This form has expired. Reload the page.",
      unknown: "This form cannot be sent: its access key is not valid. Reload the page.",
      network: "Could not reach the bank. Check your connection and try again.",
      server: "The bank did not accept the details: {description}",
      done: "Done: account {masked} at {bank} is saved.",
      cardTitle: "Card for your payout",
      card: "Card number",
      cardHint: "16 digits on the front of the card (14 to 19 on some cards)",
      cardSubmit: "Save card",
      cardRequired: "Type the card number.",
      cardDigits: "A card number has digits only.",
      cardLength: "A card number has 14 to 19 digits; you typed {n}.",
      cardLuhn: "The card number has a typo: its check digit does not match. Compare it with the card.",
      cardBrand: "Cards starting with {prefix} cannot receive payouts: use a Mir, Visa, Mastercard or UnionPay card.",
      cardDone: "Done: card {brand} ···· {last4} is saved."
    }
  };

  var counter = 0;

  function format(text, values) {
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    });
  }

  function digitsOnly(value) {
    return value.replace(/[\s-]/g, "");
  }

  /* The Bank of Russia control key: the BIK's last three digits and the account, weighted
     7, 1, 3 repeating, must sum to a multiple of ten. */
  function accountKeyOk(bik, account) {
    var digits = bik.slice(-3) + account;
    var sum = 0;
    for (var i = 0; i < digits.length; i++) {
      sum += Number(digits[i]) * WEIGHTS[i % 3];
    }
    return sum % 10 === 0;
  }

  /* The card number's check digit (Luhn): every second digit from the right doubled. */
  function luhnOk(number) {
    var sum = 0;
    for (var i = 0; i < number.length; i++) {
      var digit = Number(number[number.length - 1 - i]);
      if (i % 2) digit = digit > 4 ? digit * 2 - 9 : digit * 2;
      sum += digit;
    }
    return sum % 10 === 0;
  }

  /* The brands the bank pays to, by the number's first digits (as the server tells them). */
  var BRANDS = [
    ["mir", 2200, 2204, 4],
    ["mastercard", 2221, 2720, 4],
    ["mastercard", 51, 55, 2],
    ["unionpay", 62, 62, 2],
    ["visa", 4, 4, 1]
  ];

  function brandOf(number) {
    for (var i = 0; i < BRANDS.length; i++) {
      var start = Number(number.slice(0, BRANDS[i][3]));
      if (start >= BRANDS[i][1] && start <= BRANDS[i][2]) return BRANDS[i][0];
    }
    return null;
  }

  function element(tag, attributes, text) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      node.setAttribute(name, attributes[name]);
    });
    if (text) node.textContent = text;
    return node;
  }

  function Payout131Widget(options) {
    if (!(this instanceof Payout131Widget)) return new Payout131Widget(options);
    options = options || {};
    this.options = options;
    this.language = TEXT[options.language] ? options.language : "ru";
    this.text = TEXT[this.language];
    this.apiBase = options.apiBase || BASE;
    if (this.apiBase.slice(-1) !== "/") this.apiBase += "/";
    this.publicToken = options.publicToken || "";
    this.kind = options.kind === "card" ? "card" : "bank_account";
    this.bank = null;
    this.prefixes = null;
    this.lookupSeq = 0;
    this.bikError = null;
    this.done = false;
    this.id = "p131-" + ++counter;
  }

  Payout131Widget.prototype.render = function () {
    var container = this.options.container;
    if (typeof container === "string") container = document.querySelector(container);
    if (!container) throw new Error("Payout131Widget: container not found");
    if (this.options.stylesheet !== false) this._loadStylesheet();
    this.container = container;
    container.textContent = "";
    container.appendChild(this._build());
    return this;
  };

  Payout131Widget.prototype.destroy = function () {
    if (this.container) this.container.textContent = "";
  };

  Payout131Widget.prototype._loadStylesheet = function () {
    var href = this.apiBase + "widget.css";
    var links = document.querySelectorAll("link[rel=stylesheet]");
    for (var i = 0; i < links.length; i++) {
      if (links[i].href === href) return;
    }
    document.head.appendChild(element("link", { rel: "stylesheet", href: href }));
  };

  Payout131Widget.prototype._field = function (name, label, hint, maxlength) {
    var id = this.id + "-" + name;
    var wrap = element("div", { class: "p131-field" });
    wrap.appendChild(element("label", { for: id }, label));
    var input = element("input", {
      id: id,
      name: name,
      type: "text",
      inputmode: "numeric",
      autocomplete: "off",
      spellcheck: "false",
      maxlength: String(maxlength),
      "aria-describedby": id + "-hint " + id + "-error",
      "aria-invalid": "false"
    });
    wrap.appendChild(input);
    var note = element("p", { id: id + "-hint", class: "p131-hint", "aria-live": "polite" }, hint);
    var error = element("p", { id: id + "-error", class: "p131-error", "aria-live": "assertive" });
    wrap.appendChild(note);
    wrap.appendChild(error);
    return { wrap: wrap, input: input, hint: note, error: error, defaultHint: hint };
  };

  Payout131Widget.prototype._build = function () {
    if (this.kind === "card") return this._buildCard();
    var self = this;
    var t = this.text;
    var form = element("form", { class: "p131-widget", novalidate: "novalidate", lang: this.language });
    form.appendChild(element("h2", { class: "p131-title" }, t.title));
    this.bikField = this._field("bik", t.bik, t.bikHint, 9);
    this.accountField = this._field("account", t.account, t.accountHint, 24);
    this.bankName = element("p", { class: "p131-bank", "aria-live": "polite" });
    this.bikField.wrap.insertBefore(this.bankName, this.bikField.error);
    form.appendChild(this.bikField.wrap);
    form.appendChild(this.accountField.wrap);
    this.status = element("div", { class: "p131-status", role: "status", "aria-live": "polite" });
    this.button = element("button", { type: "submit", class: "p131-submit" }, t.submit);
    form.appendChild(this.button);
    form.appendChild(this.status);
    this.bikField.input.addEventListener("input", function () {
      self._onBik();
    });
    this.bikField.input.addEventListener("blur", function () {
      self._checkBik("left");
    });
    this.accountField.input.addEventListener("input", function () {
      self._checkAccount("typing");
    });
    this.accountField.input.addEventListener("blur", function () {
      self._checkAccount("left");
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      self._submit();
    });
    this.form = form;
    return form;
  };

  Payout131Widget.prototype._buildCard = function () {
    var self = this;
    var t = this.text;
    var form = element("form", { class: "p131-widget", novalidate: "novalidate", lang: this.language });
    form.appendChild(element("h2", { class: "p131-title" }, t.cardTitle));
    this.cardField = this._field("card", t.card, t.cardHint, 23);
    this.cardField.input.setAttribute("autocomplete", "cc-number");
    form.appendChild(this.cardField.wrap);
    this.status = element("div", { class: "p131-status", role: "status", "aria-live": "polite" });
    this.button = element("button", { type: "submit", class: "p131-submit" }, t.cardSubmit);
    form.appendChild(this.button);
    form.appendChild(this.status);
    this.cardField.input.addEventListener("input", function () {
      self._checkCard("typing");
    });
    this.cardField.input.addEventListener("blur", function () {
      self._checkCard("left");
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      self._submitCard();
    });
    this.form = form;
    return form;
  };

  /* The card number as it is typed ("typing"), left or submitted: the server's rules. */
  Payout131Widget.prototype._checkCard = function (stage) {
    var t = this.text;
    var number = digitsOnly(this.cardField.input.value);
    var message = null;
    if (!number) {
      message = stage === "submit" ? t.cardRequired : null;
    } else if (/\D/.test(number)) {
      message = t.cardDigits;
    } else if (number.length > 19 || (stage !== "typing" && number.length < 14)) {
      message = format(t.cardLength, { n: number.length });
    } else if (number.length >= 4 && !brandOf(number)) {
      message = format(t.cardBrand, { prefix: number.slice(0, 4) });
    } else if (number.length >= 14 && !luhnOk(number) && (stage !== "typing" || number.length >= 16)) {
      message = t.cardLuhn;
    }
    this._show(this.cardField, message);
    return !message && number.length >= 14;
  };

  Payout131Widget.prototype._submitCard = function () {
    if (this.done || this.button.disabled) return;
    if (!this._checkCard("submit")) return this.cardField.input.focus();
    var self = this;
    var payload = { public_token: this.publicToken, card_number: digitsOnly(this.cardField.input.value) };
    this._post(payload, this.text.cardSubmit, this.cardField, function (body) {
      self._cardSaved(body);
    });
  };

  Payout131Widget.prototype._cardSaved = function (body) {
    var result = {
      token: body.token,
      number_hash: body.token,
      brand: body.brand,
      bin: body.bin,
      last4: body.last4
    };
    this.done = true;
    this.cardField.input.value = "";  /* the number leaves the page once it is saved */
    this.cardField.input.disabled = true;
    this.button.disabled = true;
    this.status.className = "p131-status p131-status-done";
    this.status.textContent = format(this.text.cardDone, { brand: body.brand, last4: body.last4 });
    this._emit("success", result);
  };

  Payout131Widget.prototype._show = function (field, message, hint) {
    field.error.textContent = message || "";
    field.input.setAttribute("aria-invalid", message ? "true" : "false");
    field.wrap.classList.toggle("p131-invalid", Boolean(message));
    field.hint.textContent = hint === undefined ? field.defaultHint : hint;
  };

  Payout131Widget.prototype._bikProblem = function (bik) {
    if (!bik) return null;
    if (!/^\d*$/.test(bik)) return this.text.bikDigits;
    if (bik.length !== 9) return this.text.bikFormat;
    return null;
  };

  Payout131Widget.prototype._onBik = function () {
    var bik = digitsOnly(this.bikField.input.value);
    this.bank = null;
    this.bikError = null;
    this.lookupSeq++;
    this.bankName.textContent = "";
    if (this._checkBik("typing") && bik.length === 9) this._lookup(bik);
    if (digitsOnly(this.accountField.input.value).length === 20) this._checkAccount("typing");
  };

  Payout131Widget.prototype._lookup = function (bik) {
    var self = this;
    var seq = ++this.lookupSeq;
    this.bankName.textContent = this.text.bankLooking;
    var url =
      this.apiBase +
      "api/bank?bik=" +
      encodeURIComponent(bik) +
      "&public_token=" +
      encodeURIComponent(this.publicToken);
    fetch(url, { method: "GET", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok, body: body };
        });
      })
      .then(function (answer) {
        if (seq !== self.lookupSeq) return;
        self.bankName.textContent = "";
        if (answer.ok) {
          self._bankFound(answer.body.bank);
        } else {
          self._refused(answer.body.error || {}, self.bikField);
        }
      })
      .catch(function () {
        if (seq !== self.lookupSeq) return;
        self.bankName.textContent = "";
      });
  };

  Payout131Widget.prototype._bankName = function (bank) {
    return (this.language === "en" && bank.english_name) || bank.name;
  };

  Payout131Widget.prototype._bankFound = function (bank) {
    this.bank = bank;
    this.prefixes = bank.account_prefixes || null;
    if (bank.refusal) {
      this.bikError = format(this.text.bikRefused[bank.refusal], { bank: this._bankName(bank) });
    } else {
      this.bankName.textContent = this._bankName(bank);
    }
    this._checkBik("typing");
    if (digitsOnly(this.accountField.input.value).length === 20) this._checkAccount("typing");
  };

  /* The server's refusals: a spent, expired or unknown public token stops the form. */
  Payout131Widget.prototype._refused = function (error, field) {
    var reason = error.reason;
    if (reason === "spent" || reason === "expired" || reason === "unknown" || reason === "missing") {
      var key = reason === "missing" ? "unknown" : reason;
      this._fail(this.text[key], error);
      return;
    }
    if (reason === "bik_unknown") {
      this.bikError = format(this.text.bikUnknown, { bik: digitsOnly(this.bikField.input.value) });
      this._checkBik("typing");
      return;
    }
    var description = error.description || "";
    if (description.indexOf("bik") === 0) field = this.bikField;
    if (description.indexOf("account") === 0) field = this.accountField;
    this._show(field, format(this.text.server, { description: description }));
  };

  Payout131Widget.prototype._fail = function (message, error) {
    this.status.textContent = message;
    this.status.className = "p131-status p131-status-error";
    this.status.setAttribute("role", "alert");
    this.button.disabled = true;
    this._emit("error", {
      code: error.code || "network_error",
      reason: error.reason || null,
      description: error.description || message
    });
  };

  function startsWithAny(value, prefixes) {
    return prefixes.some(function (prefix) {
      return value.indexOf(prefix) === 0;
    });
  }

  /* ``stage``: "typing" (be patient with an unfinished number), "left" (the recipient moved
     on, so an unfinished number is a mistake) or "submit" (an empty field is one too). */
  Payout131Widget.prototype._checkAccount = function (stage) {
    var t = this.text;
    var account = digitsOnly(this.accountField.input.value);
    var bik = digitsOnly(this.bikField.input.value);
    var message = null;
    var hint;
    var ok = false;
    if (!account) {
      message = stage === "submit" ? t.accountRequired : null;
    } else if (/\D/.test(account)) {
      message = t.accountDigits;
    } else if (account.length > 20 || (stage !== "typing" && account.length < 20)) {
      message = format(t.accountLength, { n: account.length });
    } else if (account.length < 20) {
      hint = format(t.digitsLeft, { n: account.length });
    } else if (this.prefixes && !startsWithAny(account, this.prefixes)) {
      message = format(t.accountPrefix, { prefix: account.slice(0, 5) });
    } else if (bik.length !== 9 || this._bikProblem(bik)) {
      message = stage === "typing" ? null : t.accountNeedsBik;
    } else if (!accountKeyOk(bik, account)) {
      message = t.accountKey;
    } else {
      ok = true;
    }
    this._show(this.accountField, message, hint);
    return ok;
  };

  Payout131Widget.prototype._checkBik = function (stage) {
    var bik = digitsOnly(this.bikField.input.value);
    var problem = this._bikProblem(bik);
    if (!bik && stage === "submit") problem = this.text.bikRequired;
    if (stage === "typing" && bik.length < 9 && !/\D/.test(bik)) problem = null;
    this._show(this.bikField, problem || this.bikError);
    return !problem && !this.bikError;
  };

  Payout131Widget.prototype._submit = function () {
    if (this.done || this.button.disabled) return;
    var bikOk = this._checkBik("submit");
    var accountOk = this._checkAccount("submit");
    if (!bikOk) return this.bikField.input.focus();
    if (!accountOk) return this.accountField.input.focus();
    this._send(digitsOnly(this.bikField.input.value), digitsOnly(this.accountField.input.value));
  };

  Payout131Widget.prototype._send = function (bik, account) {
    var self = this;
    var payload = { public_token: this.publicToken, bik: bik, account: account };
    this._post(payload, this.text.submit, this.accountField, function (body) {
      self._succeeded(body);
    });
  };

  /* Send the form to the bank; ``field`` shows a refusal of the details themselves. */
  Payout131Widget.prototype._post = function (payload, label, field, done) {
    var self = this;
    var t = this.text;
    this.button.disabled = true;
    this.button.textContent = t.sending;
    this.status.textContent = "";
    fetch(this.apiBase + "api/tokenize", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(payload)
    })
      .then(function (response) {
        return response.json().then(function (body) {
          return { ok: response.ok, body: body };
        });
      })
      .then(function (answer) {
        self.button.textContent = label;
        if (answer.ok) return done(answer.body);
        self.button.disabled = false;
        self._refused(answer.body.error || {}, field);
      })
      .catch(function () {
        self.button.disabled = false;
        self.button.textContent = label;
        self.status.textContent = t.network;
        self.status.className = "p131-status p131-status-error";
        self._emit("error", { code: "network_error", reason: null, description: t.network });
      });
  };

  Payout131Widget.prototype._succeeded = function (body) {
    var result = {
      token: body.token,
      masked_account: body.masked_account,
      bik: body.bik,
      bank_name: body.bank_name
    };
    this.done = true;
    this.bikField.input.disabled = true;
    this.accountField.input.disabled = true;
    this.button.disabled = true;
    this.status.className = "p131-status p131-status-done";
    this.status.textContent = format(this.text.done, {
      masked: result.masked_account,
      bank: (this.bank && this._bankName(this.bank)) || result.bank_name || result.bik
    });
    this._emit("success", result);
  };

  Payout131Widget.prototype._emit = function (kind, payload) {
    var message = { source: MESSAGE_SOURCE, type: kind, payload: payload };
    try {
      global.postMessage(message, "/");
      var parentOrigin = this.options.parentOrigin;
      if (parentOrigin && global.parent && global.parent !== global) {
        global.parent.postMessage(message, parentOrigin);
      }
    } catch (ignored) {
      /* a page that cannot receive messages still gets the callback */
    }
    var callback = kind === "success" ? this.options.onSuccess : this.options.onError;
    if (typeof callback === "function") callback(payload);
  };

  Payout131Widget.accountKeyOk = accountKeyOk;
  Payout131Widget.luhnOk = luhnOk;
  global.Payout131Widget = Payout131Widget;
})(window);
