/*
 * The segment rule builder of the admin: nested and/or groups, pickers that only offer what a field
 * allows, a live count. Plain JS, no build step. It edits react-querybuilder JSON, the same the API
 * takes, and keeps it in the raw textarea (#id_rules), which stays editable for power users.
 *
 * Stable hooks (browser tests rely on them): #segment-rule-builder, #segment-builder-tree,
 * .rb-group / .rb-rule (data-path = the server's error path, e.g. "rules[2].rules[0]"),
 * .rb-combinator, .rb-not-toggle, .rb-add-rule, .rb-add-group, .rb-remove, .rb-field,
 * .rb-attribute-key, .rb-operator, .rb-value, .rb-value-from, .rb-value-to,
 * #segment-live-count, #segment-live-status, #segment-live-errors, #segment-live-sample,
 * #segment-rules-raw ("For developers"), #segment-rules-json-error, .rb-preset (relative periods),
 * datalist#rb-suggest-<field> (value suggestions); the sentence box (when the data-sentence-url is set):
 * #segment-sentence-text, #segment-sentence-apply, #segment-sentence-result (data-source = offline|provider).
 */
(function () {
  "use strict";

  var ATTRIBUTE = "attributes.";
  var PREVIEW_DELAY_MS = 400;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else if (key === "className") node.className = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function option(value, label, selected) {
    var node = el("option", { value: value, text: label });
    if (selected) node.selected = true;
    return node;
  }

  function Builder(root) {
    this.root = root;
    this.catalogue = JSON.parse(document.getElementById("segment-rule-fields").textContent);
    this.fields = {};
    this.catalogue.fields.forEach(function (field) { this.fields[field.name] = field; }, this);
    this.textarea = document.getElementById(root.getAttribute("data-target"));
    this.treeNode = root.querySelector("#segment-builder-tree");
    this.previewUrl = root.getAttribute("data-preview-url");
    this.jsonError = root.querySelector("#segment-rules-json-error");
    this.count = root.querySelector("#segment-live-count");
    this.status = root.querySelector("#segment-live-status");
    this.errors = root.querySelector("#segment-live-errors");
    this.sample = root.querySelector("#segment-live-sample");
    this.timer = null;
    this.sequence = 0;
    // Rules just added and not yet given a value: not marked invalid until the marketer types.
    this.pristine = new WeakSet();
    this.suggestUrl = root.getAttribute("data-suggest-url");
    this.suggested = {};
    this.suggestTicket = 0;
    this.tree = this.parse(this.textarea.value) || this.emptyGroup();
    var self = this;
    this.textarea.addEventListener("input", function () { self.fromRaw(); });
    var kind = document.getElementById("id_kind");
    if (kind) {
      var toggle = function () { root.classList.toggle("rb-hidden", kind.value === "static"); };
      kind.addEventListener("change", toggle);
      toggle();
    }
    this.render();
    this.schedulePreview();
    this.bindSentence();
  }

  /* --- a sentence fills the builder (the marketer checks and edits the rules before saving) ------ */
  Builder.prototype.bindSentence = function () {
    var self = this;
    var url = this.root.getAttribute("data-sentence-url");
    var input = this.root.querySelector("#segment-sentence-text");
    var button = this.root.querySelector("#segment-sentence-apply");
    var result = this.root.querySelector("#segment-sentence-result");
    if (!url || !input || !button) return;
    var apply = function () {
      var text = input.value.trim();
      if (!text) return;
      button.disabled = true;
      result.textContent = "reading…";
      result.removeAttribute("data-source");
      fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": self.csrfToken() },
        body: JSON.stringify({ text: text })
      })
        .then(function (response) {
          return response.json().then(function (body) { return { ok: response.ok, body: body }; });
        })
        .then(function (answer) {
          button.disabled = false;
          if (!answer.ok) {
            var problems = answer.body.text || answer.body.detail || ["That did not work."];
            result.textContent = [].concat(problems).join(" ");
            result.setAttribute("data-source", "error");
            return;
          }
          self.tree = answer.body.rules;
          self.render();
          self.sync();
          var note = answer.body.explanation;
          if (answer.body.unparsed && answer.body.unparsed.length) {
            note += " Not understood: " + answer.body.unparsed.join(", ") + ".";
          }
          note += answer.body.source === "provider" ? " (AI provider)" : "";
          result.textContent = note + " Check the rules below before saving.";
          result.setAttribute("data-source", answer.body.source);
        })
        .catch(function () {
          button.disabled = false;
          result.textContent = "Could not reach the service (network error).";
          result.setAttribute("data-source", "error");
        });
    };
    button.addEventListener("click", apply);
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); apply(); }
    });
  };

  Builder.prototype.emptyGroup = function () {
    return { combinator: "and", not: false, rules: [] };
  };

  Builder.prototype.newRule = function () {
    var first = this.catalogue.fields[0];
    var rule = { field: first.name, operator: first.operators[0], value: "" };
    this.pristine.add(rule);
    return rule;
  };

  Builder.prototype.touch = function (rule) { this.pristine.delete(rule); };

  /* Suggestions for a field's values from the tenant's data, in a <datalist> the inputs share. */
  Builder.prototype.suggestions = function (spec, input) {
    var self = this;
    if (!this.suggestUrl || !spec || spec.attribute) return;
    if (["city", "country"].indexOf(spec.name) === -1 && spec.type !== "set") return;
    var id = "rb-suggest-" + spec.name;
    var list = document.getElementById(id);
    if (!list) { list = el("datalist", { id: id }); this.root.appendChild(list); }
    input.setAttribute("list", id);
    input.setAttribute("autocomplete", "off");
    var show = function (words, values) {
      list.textContent = "";
      var head = words.slice(0, -1).map(function (w) { return w.trim(); }).filter(Boolean);
      values.forEach(function (item) {
        var node = el("option", { value: head.concat([item.value]).join(", ") });
        if (item.label !== item.value) node.label = item.label;
        list.appendChild(node);
      });
    };
    var load = function () {
      var words = input.value.split(",");
      var q = words[words.length - 1].trim();
      var key = spec.name + "|" + q.toLowerCase();
      var ticket = ++self.suggestTicket; // only the answer to the latest keystroke is shown
      if (self.suggested[key]) { show(words, self.suggested[key]); return; }
      fetch(self.suggestUrl + "?field=" + encodeURIComponent(spec.name) + "&q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { values: [] }; })
        .then(function (data) {
          self.suggested[key] = data.values || [];
          if (ticket === self.suggestTicket) show(words, self.suggested[key]);
        });
    };
    input.addEventListener("focus", load);
    input.addEventListener("input", load);
  };

  /* An error of the server in the builder's words: "Rule 2 (City): ..." (the server sends both). */
  Builder.prototype.errorWords = function (raw, spoken) {
    return spoken || raw.replace(/^rules\[(\d+)\](\.value|\.field|\.operator)?:/, function (m, i) { return "Rule " + (parseInt(i, 10) + 1) + ":"; });
  };

  Builder.prototype.parse = function (text) {
    if (!text || !text.trim()) return null;
    try {
      var value = JSON.parse(text);
      return value && typeof value === "object" && Array.isArray(value.rules) ? value : null;
    } catch (error) {
      return null;
    }
  };

  Builder.prototype.spec = function (name) {
    if (typeof name === "string" && name.indexOf(ATTRIBUTE) === 0) {
      return { name: name, type: "text", operators: this.catalogue.text_operators, attribute: true };
    }
    return this.fields[name] || null;
  };

  /* --- raw JSON <-> tree ------------------------------------------------------------------- */
  Builder.prototype.sync = function () {
    this.textarea.value = this.tree.rules.length ? JSON.stringify(this.tree, null, 2) : "";
    this.jsonError.hidden = true;
    this.schedulePreview();
  };

  Builder.prototype.fromRaw = function () {
    var text = this.textarea.value;
    if (!text.trim()) {
      this.tree = this.emptyGroup();
      this.jsonError.hidden = true;
      this.render();
      this.schedulePreview();
      return;
    }
    var parsed = this.parse(text);
    if (!parsed) {
      this.jsonError.textContent = "Not valid JSON for a group ({\"combinator\": ..., \"rules\": [...]}); the builder shows the last valid rules.";
      this.jsonError.hidden = false;
      return;
    }
    this.jsonError.hidden = true;
    this.tree = parsed;
    this.render();
    this.schedulePreview();
  };

  /* --- rendering ---------------------------------------------------------------------------- */
  Builder.prototype.render = function () {
    this.treeNode.textContent = "";
    this.treeNode.appendChild(this.renderGroup(this.tree, null, ""));
  };

  Builder.prototype.renderGroup = function (group, parent, path) {
    var self = this;
    var prefix = path ? path + "." : "";
    var combinator = el("select", { className: "rb-combinator", "aria-label": "Combinator" }, [
      option("and", "Match all of", String(group.combinator).toLowerCase() !== "or"),
      option("or", "Match any of", String(group.combinator).toLowerCase() === "or")
    ]);
    combinator.addEventListener("change", function () { group.combinator = combinator.value; self.sync(); });
    var notBox = el("input", { type: "checkbox", className: "rb-not-toggle" });
    notBox.checked = group.not === true;
    notBox.addEventListener("change", function () { group.not = notBox.checked; self.sync(); });
    var addRule = el("button", { type: "button", className: "rb-add-rule", text: "+ Rule" });
    addRule.addEventListener("click", function () { group.rules.push(self.newRule()); self.render(); self.sync(); });
    var addGroup = el("button", { type: "button", className: "rb-add-group", text: "+ Group" });
    addGroup.addEventListener("click", function () {
      var child = self.emptyGroup();
      child.rules.push(self.newRule());
      group.rules.push(child);
      self.render();
      self.sync();
    });
    var header = el("div", { className: "rb-group-header" }, [
      combinator,
      el("label", { className: "rb-not", title: "Match customers who do NOT meet this group" }, [notBox, document.createTextNode(" exclude these")]),
      addRule,
      addGroup,
      parent ? this.removeButton(parent, group) : null
    ]);
    var children = el("div", { className: "rb-children" });
    if (!group.rules.length) {
      children.appendChild(el("p", { className: "rb-empty", text: "No rules yet: add a rule or a group." }));
    }
    group.rules.forEach(function (child, index) {
      var childPath = prefix + "rules[" + index + "]";
      if (child && typeof child === "object" && Array.isArray(child.rules)) {
        children.appendChild(self.renderGroup(child, group, childPath));
      } else if (child && typeof child === "object") {
        children.appendChild(self.renderRule(child, group, childPath));
      }
    });
    return el("div", { className: "rb-group", "data-path": path }, [header, children]);
  };

  Builder.prototype.removeButton = function (parent, node) {
    var self = this;
    var button = el("button", { type: "button", className: "rb-remove", "aria-label": "Remove", text: "×" });
    button.addEventListener("click", function () {
      parent.rules.splice(parent.rules.indexOf(node), 1);
      self.render();
      self.sync();
    });
    return button;
  };

  // The words for operators come with the catalogue (segments.rules.OPERATOR_LABELS): one list for
  // this builder and the flow builder's conditions.
  Builder.prototype.operatorLabel = function (spec, operator) {
    var labels = (spec && this.catalogue.operator_labels[spec.type]) || {};
    return labels[operator] || operator;
  };

  Builder.prototype.renderRule = function (rule, parent, path) {
    var self = this;
    var spec = this.spec(rule.field);
    var fieldSelect = el("select", { className: "rb-field", "aria-label": "Field" });
    this.catalogue.fields.forEach(function (field) {
      fieldSelect.appendChild(option(field.name, field.label, field.name === rule.field));
    });
    fieldSelect.appendChild(option(ATTRIBUTE, "Attribute…", spec && spec.attribute));
    if (!spec) fieldSelect.appendChild(option(rule.field, "(unknown: " + rule.field + ")", true));
    fieldSelect.addEventListener("change", function () {
      var name = fieldSelect.value === ATTRIBUTE ? ATTRIBUTE + "key" : fieldSelect.value;
      var next = self.spec(name);
      rule.field = name;
      if (next.operators.indexOf(rule.operator) === -1) rule.operator = next.operators[0];
      rule.value = self.convertValue(rule.value, rule.operator, next);
      self.render();
      self.sync();
    });
    var parts = [fieldSelect];
    if (spec && spec.attribute) {
      var key = el("input", { type: "text", className: "rb-attribute-key", placeholder: "attribute key", "aria-label": "Attribute key" });
      key.value = rule.field.slice(ATTRIBUTE.length);
      key.addEventListener("input", function () { rule.field = ATTRIBUTE + key.value; self.sync(); });
      parts.push(key);
    }
    var operators = spec ? spec.operators : [];
    var operatorSelect = el("select", { className: "rb-operator", "aria-label": "Operator" });
    operators.forEach(function (operator) {
      operatorSelect.appendChild(option(operator, self.operatorLabel(spec, operator), operator === rule.operator));
    });
    if (operators.indexOf(rule.operator) === -1) {
      operatorSelect.appendChild(option(rule.operator || "", "(not valid: " + rule.operator + ")", true));
    }
    operatorSelect.addEventListener("change", function () {
      rule.value = self.convertValue(rule.value, operatorSelect.value, spec);
      rule.operator = operatorSelect.value;
      if (self.catalogue.no_value_operators.indexOf(rule.operator) !== -1) delete rule.value;
      self.render();
      self.sync();
    });
    parts.push(operatorSelect);
    parts = parts.concat(this.valueEditors(rule, spec));
    parts.push(this.removeButton(parent, rule));
    var node = el("div", { className: "rb-rule", "data-path": path }, parts);
    node.rbRule = rule;
    return node;
  };

  /* A value kept across an operator or field change where it still makes sense. */
  Builder.prototype.convertValue = function (value, operator, spec) {
    var list = this.catalogue.list_operators.indexOf(operator) !== -1;
    if (this.catalogue.no_value_operators.indexOf(operator) !== -1) return undefined;
    if (operator === "inLastDays" || operator === "notInLastDays") return typeof value === "number" ? value : 30;
    if (spec && spec.type === "bool") return typeof value === "boolean" ? value : true;
    if (list) {
      if (Array.isArray(value)) return value;
      return value === undefined || value === "" || typeof value === "boolean" ? [] : [value];
    }
    if (Array.isArray(value)) return value.length ? value[0] : "";
    return value === undefined || typeof value === "boolean" ? "" : value;
  };

  Builder.prototype.valueEditors = function (rule, spec) {
    var self = this;
    var operator = rule.operator;
    if (!spec || this.catalogue.no_value_operators.indexOf(operator) !== -1) return [];
    if (spec.type === "bool") {
      var select = el("select", { className: "rb-value", "aria-label": "Value" }, [
        option("true", "yes", rule.value === true || String(rule.value).toLowerCase() === "true"),
        option("false", "no", rule.value === false || String(rule.value).toLowerCase() === "false")
      ]);
      if (typeof rule.value !== "boolean") rule.value = select.value === "true";
      select.addEventListener("change", function () { self.touch(rule); rule.value = select.value === "true"; self.sync(); });
      return [select];
    }
    var placeholder = {
      text: "text",
      number: "number, e.g. 1000.50",
      date: "YYYY-MM-DD",
      set: spec.member_type === "id" ? "campaign id" : "value"
    }[spec.type];
    if (operator === "inLastDays" || operator === "notInLastDays") {
      var days = el("input", { type: "number", min: "0", step: "1", className: "rb-value", "aria-label": "Days" });
      days.value = rule.value === undefined ? "" : rule.value;
      days.addEventListener("input", function () {
        self.touch(rule);
        rule.value = /^\d+$/.test(days.value) ? parseInt(days.value, 10) : days.value;
        self.sync();
      });
      var presets = [7, 30, 90, 365].map(function (n) {
        var button = el("button", { type: "button", className: "rb-preset", "data-days": String(n), text: n === 365 ? "a year" : n + " days" });
        button.addEventListener("click", function () { days.value = String(n); self.touch(rule); rule.value = n; self.sync(); });
        return button;
      });
      return [days, el("span", { className: "rb-unit", text: "days" })].concat(presets);
    }
    if (operator === "between" || operator === "notBetween") {
      var pair = Array.isArray(rule.value) ? rule.value.slice(0, 2) : String(rule.value || "").split(",");
      while (pair.length < 2) pair.push("");
      rule.value = pair;
      var kind = spec.type === "date" && pair.every(function (v) { return !v || /^\d{4}-\d\d-\d\d$/.test(v); }) ? "date" : "text";
      var from = el("input", { type: kind, className: "rb-value-from", placeholder: placeholder, "aria-label": "From" });
      var to = el("input", { type: kind, className: "rb-value-to", placeholder: placeholder, "aria-label": "To" });
      from.value = pair[0];
      to.value = pair[1];
      var update = function () { self.touch(rule); rule.value = [from.value.trim(), to.value.trim()]; self.sync(); };
      from.addEventListener("input", update);
      to.addEventListener("input", update);
      return [from, el("span", { className: "rb-unit", text: "and" }), to];
    }
    var input = el("input", { type: "text", className: "rb-value", "aria-label": "Value" });
    if (operator === "in" || operator === "notIn") {
      input.placeholder = placeholder + ", comma-separated";
      input.value = Array.isArray(rule.value) ? rule.value.join(", ") : (rule.value || "");
      input.addEventListener("input", function () {
        self.touch(rule);
        rule.value = input.value.split(",").map(function (item) { return item.trim(); })
          .filter(function (item) { return item !== ""; });
        self.sync();
      });
      this.suggestions(spec, input);
      return [input];
    }
    input.placeholder = placeholder;
    input.value = rule.value === undefined || rule.value === null ? "" : rule.value;
    if (spec.type === "date" && (!input.value || /^\d{4}-\d\d-\d\d$/.test(input.value))) input.type = "date";
    input.addEventListener("input", function () { self.touch(rule); rule.value = input.value; self.sync(); });
    input.addEventListener("change", function () { self.touch(rule); rule.value = input.value; self.sync(); });
    this.suggestions(spec, input);
    return [input];
  };

  /* --- live count ------------------------------------------------------------------------- */
  Builder.prototype.schedulePreview = function () {
    var self = this;
    clearTimeout(this.timer);
    this.timer = setTimeout(function () { self.preview(); }, PREVIEW_DELAY_MS);
  };

  Builder.prototype.csrfToken = function () {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  };

  Builder.prototype.preview = function () {
    var self = this;
    var sequence = ++this.sequence;
    this.errors.textContent = "";
    this.treeNode.querySelectorAll(".rb-invalid").forEach(function (node) { node.classList.remove("rb-invalid"); });
    if (!this.tree.rules.length) {
      this.count.textContent = "—";
      this.status.textContent = "";
      this.sample.textContent = "";
      return;
    }
    this.status.textContent = "counting…";
    this.root.setAttribute("data-state", "counting");
    fetch(this.previewUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": this.csrfToken() },
      body: JSON.stringify({ rules: this.tree })
    })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (sequence !== self.sequence) return; // a newer edit is being counted
        self.root.setAttribute("data-state", result.ok ? "counted" : "invalid");
        if (!result.ok) {
          self.count.textContent = "—";
          self.sample.textContent = "";
          var waiting = 0;
          var spoken = result.body.messages || [];
          (result.body.errors || []).forEach(function (message, index) {
            var path = message.split(":")[0].replace(/\.(field|operator|value|valueSource|combinator|not|rules)(\[\d+\])?$/, "");
            var node = self.treeNode.querySelector('[data-path="' + path.replace(/"/g, "") + '"]');
            if (node && node.rbRule && self.pristine.has(node.rbRule)) { waiting += 1; return; } // not typed in yet
            self.errors.appendChild(el("li", { text: self.errorWords(message, spoken[index]) }));
            if (node) node.classList.add("rb-invalid");
          });
          self.status.textContent = self.errors.childNodes.length ? "fix the rules to count" : (waiting ? "finish the new rule to count" : "");
          if (!self.errors.childNodes.length) self.root.setAttribute("data-state", "incomplete");
          return;
        }
        self.count.textContent = String(result.body.count);
        self.status.textContent = "(" + result.body.milliseconds + " ms)";
        self.sample.textContent = "";
        result.body.sample.forEach(function (customer) {
          var link = el("a", { href: customer.url, text: customer.email || ("#" + customer.id) });
          self.sample.appendChild(el("li", {}, [link, document.createTextNode(customer.name ? " — " + customer.name : "")]));
        });
      })
      .catch(function () {
        if (sequence !== self.sequence) return;
        self.root.setAttribute("data-state", "error");
        self.status.textContent = "could not count (network error)";
      });
  };

  function start() {
    var root = document.getElementById("segment-rule-builder");
    if (root && !root.builder) root.builder = new Builder(root);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
