// The flow builder: a vertical canvas of steps over the flow's JSON definition. Everything shown from
// data is set through textContent / value (never innerHTML), so names and rules cannot inject markup.
(function () {
    "use strict";
    var root = document.getElementById("flow-builder");
    if (!root) return;
    var state = JSON.parse(document.getElementById("flow-definition").textContent);
    var catalogue = JSON.parse(document.getElementById("flow-catalogue").textContent);
    var canChange = root.dataset.canChange === "true";
    var UNITS = ["seconds", "minutes", "hours", "days"];
    var LABELS = {delay: "Wait", email: "Send email", branch: "Branch", wait_for: "Wait for", tag: "Tag", exit: "Exit"};
    var TRIGGERS = {
        customer_created: "A customer is created", order_placed: "An order is placed", order_status: "An order's status changes",
        segment_entered: "A customer enters a segment", event: "An event arrives", date: "A date comes (yearly)"
    };

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
    function select(className, options, value, onChange) {
        var node = el("select", {className: className});
        options.forEach(function (option) {
            var pair = Array.isArray(option) ? option : [option, option];
            var item = el("option", {value: String(pair[0]), text: String(pair[1])});
            if (String(pair[0]) === String(value)) item.selected = true;
            node.appendChild(item);
        });
        node.disabled = !canChange;
        node.addEventListener("change", function () { onChange(node.value); });
        return node;
    }
    function input(className, value, onChange, type) {
        var node = el("input", {className: className, type: type || "text"});
        node.value = value === undefined || value === null ? "" : value;
        node.disabled = !canChange;
        node.addEventListener("input", function () { onChange(node.value); });
        return node;
    }
    function duration(target) {
        var unit = UNITS.filter(function (u) { return u in target; })[0] || "hours";
        var amount = input("step-amount", target[unit], function (value) {
            UNITS.forEach(function (u) { delete target[u]; });
            target[unitSelect.value] = Number(value);
        }, "number");
        amount.style.width = "6em";
        var unitSelect = select("step-unit", UNITS, unit, function (value) {
            var n = Number(amount.value);
            UNITS.forEach(function (u) { delete target[u]; });
            target[value] = n;
        });
        return [amount, unitSelect];
    }

    // --- the trigger -----------------------------------------------------------------------------
    function renderTrigger() {
        var box = document.getElementById("flow-trigger");
        box.replaceChildren();
        var trigger = state.trigger || (state.trigger = {});
        var types = [["", "— choose —"]].concat(catalogue.trigger_types.map(function (t) { return [t, TRIGGERS[t] || t]; }));
        var picker = select("", types, trigger.type || "", function (value) { state.trigger = value ? {type: value} : {}; renderTrigger(); });
        picker.id = "trigger-type";
        box.appendChild(picker);
        function field(name, label, node) {
            node.id = "trigger-" + name;
            box.appendChild(el("label", {text: label}));
            box.appendChild(node);
        }
        if (trigger.type === "event") field("name", "named", input("", trigger.name, function (v) { trigger.name = v; }));
        if (trigger.type === "order_placed") {
            field("min_total", "of at least", input("", trigger.min_total, function (v) { if (v) trigger.min_total = v; else delete trigger.min_total; }));
            field("sku", "with SKU", input("", trigger.sku, function (v) { if (v) trigger.sku = v; else delete trigger.sku; }));
        }
        if (trigger.type === "order_status") field("status", "to", select("", catalogue.order_statuses, trigger.status, function (v) { trigger.status = v; }));
        if (trigger.type === "segment_entered") {
            var segments = [["", "— segment —"]].concat(catalogue.segments.map(function (s) { return [s.id, s.name]; }));
            field("segment", "", select("", segments, trigger.segment, function (v) { trigger.segment = v ? Number(v) : null; }));
        }
        if (trigger.type === "date") {
            field("attribute", "date in", input("", trigger.attribute || "attributes.birthday", function (v) { trigger.attribute = v; }));
            if (!trigger.attribute) trigger.attribute = "attributes.birthday";
            field("offset_days", "days after", input("", trigger.offset_days || 0, function (v) { trigger.offset_days = Number(v) || 0; }, "number"));
        }
    }

    // --- the steps -------------------------------------------------------------------------------
    function laterSteps(index, current) {
        var options = [["", "the next step"]].concat(state.steps.slice(index + 1).map(function (s) { return [s.id, s.id + " (" + (LABELS[s.type] || s.type) + ")"]; }));
        // A jump that a move left pointing back (or at a removed step) stays visible until it is fixed:
        // saving names it (a path only goes forward).
        if (current && !options.some(function (o) { return o[0] === current; })) options.push([current, current + " (not after this step: pick another)"]);
        return options;
    }
    function paths(step, index) {
        var yesLabel = step.type === "branch" ? "Yes, the rules hold → " : "Yes, it happened → ";
        var noLabel = step.type === "branch" ? "No → " : "No, timed out → ";
        return el("div", {className: "paths"}, [
            el("div", {className: "path yes"}, [el("span", {text: yesLabel}), select("step-yes", laterSteps(index, step.yes), step.yes || "", function (v) { if (v) step.yes = v; else delete step.yes; })]),
            el("div", {className: "path no"}, [el("span", {text: noLabel}), select("step-no", laterSteps(index, step.no), step.no || "", function (v) { if (v) step.no = v; else delete step.no; })])
        ]);
    }
    // --- rules (the segment language: groups of conditions matched all / any, nested) -----------------
    // Each group is .rule-group (data-path = the server's error path below the rules, e.g. "rules[1]"),
    // each condition .rule with .rule-field, .rule-attribute, .rule-operator, .rule-value.
    var FIELDS = {};
    (catalogue.rule_fields ? catalogue.rule_fields.fields : []).forEach(function (f) { FIELDS[f.name] = f; });
    var ATTRIBUTE = "attributes.";
    function fieldSpec(name) {
        if (typeof name === "string" && name.indexOf(ATTRIBUTE) === 0) return {name: name, type: "text", operators: catalogue.rule_fields.text_operators, attribute: true};
        return FIELDS[name] || null;
    }
    function noValue(operator) { return ["null", "notNull"].indexOf(operator) !== -1; }
    function listValue(operator) { return ["in", "notIn", "between", "notBetween"].indexOf(operator) !== -1; }
    function newRule() {
        var first = catalogue.rule_fields.fields[0];
        return {field: first.name, operator: first.operators[0], value: ""};
    }
    function valueText(rule) {
        if (Array.isArray(rule.value)) return rule.value.join(", ");
        return rule.value === undefined || rule.value === null ? "" : String(rule.value);
    }
    function setValue(rule, spec, text) {
        if (noValue(rule.operator)) { delete rule.value; return; }
        if (listValue(rule.operator)) { rule.value = split(text); return; }
        if (rule.operator === "inLastDays" || rule.operator === "notInLastDays") { rule.value = /^\d+$/.test(text.trim()) ? Number(text) : text; return; }
        if (spec && spec.type === "bool") { rule.value = text === "true"; return; }
        rule.value = text;
    }
    function ruleRow(rule, group, path, redraw) {
        var spec = fieldSpec(rule.field);
        var fields = catalogue.rule_fields.fields.map(function (f) { return [f.name, f.label]; }).concat([[ATTRIBUTE, "Attribute…"]]);
        if (!spec) fields.push([rule.field, "(unknown: " + rule.field + ")"]);
        var fieldSelect = select("rule-field", fields, spec && spec.attribute ? ATTRIBUTE : rule.field, function (v) {
            rule.field = v === ATTRIBUTE ? ATTRIBUTE + "key" : v;
            var next = fieldSpec(rule.field);
            if (next.operators.indexOf(rule.operator) === -1) rule.operator = next.operators[0];
            setValue(rule, next, valueText(rule));
            redraw();
        });
        fieldSelect.setAttribute("aria-label", "Field");
        var parts = [fieldSelect];
        if (spec && spec.attribute) {
            var key = input("rule-attribute", rule.field.slice(ATTRIBUTE.length), function (v) { rule.field = ATTRIBUTE + v; });
            key.placeholder = "attribute key"; key.setAttribute("aria-label", "Attribute key");
            parts.push(key);
        }
        var operators = spec ? spec.operators.slice() : [];
        if (operators.indexOf(rule.operator) === -1) operators.push(rule.operator);
        // Shown in the segment builder's words (the catalogue's operator_labels), stored as the operator.
        var labels = (spec && catalogue.rule_fields.operator_labels[spec.type]) || {};
        operators = operators.map(function (operator) { return [operator, labels[operator] || operator]; });
        var operatorSelect = select("rule-operator", operators, rule.operator, function (v) {
            rule.operator = v;
            setValue(rule, spec, valueText(rule));
            redraw();
        });
        operatorSelect.setAttribute("aria-label", "Operator");
        parts.push(operatorSelect);
        if (!noValue(rule.operator)) {
            var value;
            if (spec && spec.type === "bool") {
                if (typeof rule.value !== "boolean") rule.value = true;
                value = select("rule-value", [["true", "yes"], ["false", "no"]], String(rule.value), function (v) { setValue(rule, spec, v); });
            } else {
                value = input("rule-value", valueText(rule), function (v) { setValue(rule, spec, v); });
                value.placeholder = listValue(rule.operator) ? "values, comma-separated" : (spec && spec.type === "date" ? "YYYY-MM-DD" : "value");
            }
            value.setAttribute("aria-label", "Value");
            parts.push(value);
        }
        var remove = button("rule-remove", "✕", function () { group.rules.splice(group.rules.indexOf(rule), 1); redraw(); });
        remove.setAttribute("aria-label", "Remove this condition");
        parts.push(remove);
        return el("div", {className: "rule flex flex-row flex-wrap gap-2 items-center", "data-path": path}, parts);
    }
    function groupBox(group, parent, path, redraw) {
        var prefix = path ? path + "." : "";
        group.combinator = String(group.combinator || "and").toLowerCase() === "or" ? "or" : "and";
        var combinator = select("rule-combinator", [["and", "all of"], ["or", "any of"]], group.combinator, function (v) { group.combinator = v; });
        combinator.setAttribute("aria-label", "Match all or any of the conditions");
        var negate = el("input", {type: "checkbox", className: "rule-not"});
        negate.checked = group.not === true;
        negate.disabled = !canChange;
        negate.addEventListener("change", function () { if (negate.checked) group.not = true; else delete group.not; });
        var header = el("div", {className: "flex flex-row flex-wrap gap-2 items-center"}, [
            el("span", {text: parent ? "and matches" : "the customer matches"}), combinator,
            el("label", {}, [negate, el("span", {text: " none of them (not)"})]),
            button("rule-add", "+ condition", function () { group.rules.push(newRule()); redraw(); }),
            button("rule-add-group", "+ group", function () { group.rules.push({combinator: "or", rules: [newRule()]}); redraw(); }),
            parent ? button("rule-remove-group", "✕", function () { parent.rules.splice(parent.rules.indexOf(group), 1); redraw(); }) : null
        ]);
        var children = el("div", {className: "rule-children"});
        group.rules.forEach(function (child, index) {
            var childPath = prefix + "rules[" + index + "]";
            if (child && typeof child === "object" && Array.isArray(child.rules)) children.appendChild(groupBox(child, group, childPath, redraw));
            else if (child && typeof child === "object") children.appendChild(ruleRow(child, group, childPath, redraw));
        });
        return el("div", {className: "rule-group", "data-path": path}, [header, children]);
    }
    function rulesEditor(holder, key, className) {
        // holder[key] is a group, or null/absent (no conditions yet); an emptied group becomes null.
        var box = el("div", {className: className});
        function redraw() {
            box.replaceChildren();
            var group = holder[key];
            if (group && (!Array.isArray(group.rules) || !group.rules.length)) { holder[key] = group = null; }
            if (!group) {
                box.appendChild(button("rule-start", "+ condition", function () { holder[key] = {combinator: "and", rules: [newRule()]}; redraw(); }));
                return;
            }
            box.appendChild(groupBox(group, null, "", redraw));
        }
        redraw();
        return box;
    }
    function ruleEditor(step) {
        if (!step.rules || !Array.isArray(step.rules.rules)) step.rules = {combinator: "and", rules: [{field: "total_spent", operator: ">", value: "0"}]};
        return rulesEditor(step, "rules", "step-rules");
    }
    function body(step, index) {
        var parts = [];
        if (step.type === "delay") parts = duration(step);
        if (step.type === "email") {
            var templates = [["", "— template —"]].concat(catalogue.templates.map(function (t) { return [t.id, t.name]; }));
            parts = [select("step-template", templates, step.template || "", function (v) { step.template = v ? Number(v) : null; }),
                     input("step-subject", step.subject, function (v) { if (v) step.subject = v; else delete step.subject; })];
            parts[1].placeholder = "subject (the template's if empty)";
        }
        if (step.type === "wait_for") {
            var timeout = step.timeout || (step.timeout = {hours: 24});
            parts = [input("step-event", step.event || "order_placed", function (v) { step.event = v; }), el("span", {text: " for at most "})].concat(duration(timeout));
            if (!step.event) step.event = "order_placed";
        }
        if (step.type === "branch") parts = [ruleEditor(step)];
        if (step.type === "tag") {
            parts = [el("span", {text: "add "}), input("step-add", (step.add || []).join(", "), function (v) { step.add = split(v); }),
                     el("span", {text: " remove "}), input("step-remove", (step.remove || []).join(", "), function (v) { step.remove = split(v); })];
        }
        if (step.type === "exit") parts = [el("span", {text: "The run ends here (completed)."})];
        var box = el("div", {className: "flex flex-row flex-wrap gap-2 items-center mt-2"}, parts);
        var wrapper = el("div", {}, [box]);
        if (step.type === "branch" || step.type === "wait_for") wrapper.appendChild(paths(step, index));
        return wrapper;
    }
    function split(value) { return value.split(",").map(function (s) { return s.trim(); }).filter(Boolean); }
    function button(className, text, onClick) {
        var node = el("button", {type: "button", className: className + " border border-base-200 px-2 rounded-default", text: text});
        node.disabled = !canChange;
        node.addEventListener("click", onClick);
        return node;
    }
    function moveTo(from, to) {
        // `to` is the position before which the step goes (0..length), as a drop line shows it.
        if (to > from) to -= 1;
        if (from < 0 || to < 0 || to >= state.steps.length || to === from) return;
        var step = state.steps.splice(from, 1)[0];
        state.steps.splice(to, 0, step);
        renderSteps();
        document.getElementById("flow-steps-announce").textContent = "Step " + step.id + " moved to position " + (to + 1) + ".";
    }
    function move(index, by) {
        var target = index + by;
        if (target < 0 || target >= state.steps.length) return;
        moveTo(index, by > 0 ? target + 1 : target);
        var card = document.getElementById("step-" + state.steps[target].id);
        var again = card && card.querySelector(by > 0 ? ".step-down" : ".step-up");
        if (again && !again.disabled) again.focus(); // keyboard users keep their place
    }
    // Drag and drop: the handle (.step-handle) drags its card; a card under the pointer shows where
    // it lands (.drop-before / .drop-after: its upper or lower half). The buttons stay for keyboards.
    var dragging = null;
    function dropAfter(card, event) {
        var box = card.getBoundingClientRect();
        return event.clientY > box.top + box.height / 2;
    }
    function clearDrop() {
        document.querySelectorAll("#flow-steps .drop-before, #flow-steps .drop-after").forEach(function (node) {
            node.classList.remove("drop-before", "drop-after");
        });
    }
    function draggable(card, handle, index) {
        if (!canChange) return;
        handle.setAttribute("draggable", "true");
        handle.addEventListener("dragstart", function (event) {
            dragging = index;
            event.dataTransfer.effectAllowed = "move";
            event.dataTransfer.setData("text/plain", state.steps[index].id);
            if (event.dataTransfer.setDragImage) event.dataTransfer.setDragImage(card, 20, 20);
            card.classList.add("dragging");
        });
        handle.addEventListener("dragend", function () { dragging = null; card.classList.remove("dragging"); clearDrop(); });
        card.addEventListener("dragover", function (event) {
            if (dragging === null) return;
            event.preventDefault();
            event.dataTransfer.dropEffect = "move";
            var after = dropAfter(card, event);
            clearDrop();
            card.classList.add(after ? "drop-after" : "drop-before");
        });
        card.addEventListener("dragleave", function (event) {
            if (!card.contains(event.relatedTarget)) card.classList.remove("drop-before", "drop-after");
        });
        card.addEventListener("drop", function (event) {
            if (dragging === null) return;
            event.preventDefault();
            var from = dragging;
            dragging = null;
            clearDrop();
            moveTo(from, index + (dropAfter(card, event) ? 1 : 0));
        });
    }
    function renderSteps() {
        var canvas = document.getElementById("flow-steps");
        canvas.replaceChildren();
        state.steps.forEach(function (step, index) {
            if (index) canvas.appendChild(el("div", {className: "connector"}));
            var handle = el("span", {className: "step-handle", title: "Drag to move", "aria-hidden": "true", text: "⠿"});
            var up = button("step-up", "↑", function () { move(index, -1); });
            var down = button("step-down", "↓", function () { move(index, 1); });
            var remove = button("step-remove", "✕", function () { state.steps.splice(index, 1); renderSteps(); });
            up.setAttribute("aria-label", "Move step " + step.id + " up");
            down.setAttribute("aria-label", "Move step " + step.id + " down");
            remove.setAttribute("aria-label", "Remove step " + step.id);
            if (index === 0) up.disabled = true;
            if (index === state.steps.length - 1) down.disabled = true;
            var card = el("div", {className: "step", id: "step-" + step.id, "data-type": step.type}, [
                el("div", {className: "flex flex-row gap-2 items-center"}, [
                    handle,
                    el("span", {className: "font-semibold", text: (index + 1) + ". " + (LABELS[step.type] || step.type)}),
                    el("code", {className: "text-xs", text: step.id}),
                    el("span", {className: "grow"}),
                    up, down, remove
                ]),
                body(step, index),
                el("div", {className: "step-counts mt-2"})
            ]);
            draggable(card, handle, index);
            canvas.appendChild(card);
        });
        showCounts();
    }
    function newId(type) {
        var taken = {}, n = 1;
        state.steps.forEach(function (s) { taken[s.id] = true; });
        while (taken[type + "_" + n]) n += 1;
        return type + "_" + n;
    }
    var addType = document.getElementById("add-step-type");
    catalogue.step_types.forEach(function (type) { addType.appendChild(el("option", {value: type, text: LABELS[type] || type})); });
    document.getElementById("add-step").disabled = !canChange;
    document.getElementById("add-step").addEventListener("click", function () {
        var type = addType.value, step = {id: newId(type), type: type};
        if (type === "delay") step.hours = 1;
        if (type === "wait_for") { step.event = "order_placed"; step.timeout = {hours: 24}; }
        if (type === "tag") step.add = ["flow"];
        state.steps.push(step);
        renderSteps();
    });

    // --- rules, save ---------------------------------------------------------------------------------
    var reentry = document.getElementById("flow-reentry"), days = document.getElementById("flow-reentry-days");
    if (state.reentry && typeof state.reentry === "object") { reentry.value = "after"; days.value = state.reentry.after_days; }
    else reentry.value = state.reentry || "never";
    document.getElementById("flow-cap").value = state.frequency_cap_hours;
    if (state.send_window) {
        document.getElementById("flow-window-start").value = state.send_window.start_hour;
        document.getElementById("flow-window-end").value = state.send_window.end_hour;
    }
    document.getElementById("flow-from-email").value = state.from_email || "";

    function collect() {
        var start = document.getElementById("flow-window-start").value, end = document.getElementById("flow-window-end").value;
        return {
            name: document.getElementById("flow-name").value,
            trigger: state.trigger || {},
            steps: state.steps,
            exit_rules: state.exit_rules || null,
            reentry: reentry.value === "after" ? {after_days: Number(days.value)} : reentry.value,
            frequency_cap_hours: Number(document.getElementById("flow-cap").value || 0),
            send_window: start !== "" && end !== "" ? {start_hour: Number(start), end_hour: Number(end)} : null,
            from_email: document.getElementById("flow-from-email").value
        };
    }
    function csrf() {
        var match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
        return match ? decodeURIComponent(match[1]) : "";
    }
    // "steps[2].rules: rules[1].operator: ..." / "exit_rules: rules[0].value: ...": outline that condition.
    function markInvalid(message) {
        var match = /^(?:steps\[(\d+)\]\.rules|exit_rules): (rules\[[^:]*?)(?:\.(?:field|operator|value|valueSource|combinator|not|rules))?(?:\[\d+\])?:/.exec(message);
        if (!match) return;
        var scope = match[1] !== undefined ? document.querySelectorAll("#flow-steps .step")[Number(match[1])] : document.getElementById("flow-exit-rules");
        var node = scope && scope.querySelector('[data-path="' + match[2].replace(/"/g, "") + '"]');
        if (node) node.classList.add("rule-invalid");
    }
    var save = document.getElementById("flow-save");
    if (save) save.addEventListener("click", function () {
        var errors = document.getElementById("flow-errors"), result = document.getElementById("flow-save-result");
        errors.replaceChildren(); result.textContent = "";
        document.querySelectorAll(".rule-invalid").forEach(function (node) { node.classList.remove("rule-invalid"); });
        fetch(root.dataset.saveUrl, {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json", "X-CSRFToken": csrf()}, body: JSON.stringify(collect())})
            .then(function (response) { return response.json().then(function (data) { return [response.ok, data]; }); })
            .then(function (pair) {
                if (pair[0]) { result.textContent = "Saved (version " + pair[1].version + ")."; return; }
                Object.keys(pair[1].errors || {}).forEach(function (field) {
                    pair[1].errors[field].forEach(function (message) {
                        errors.appendChild(el("div", {text: field + ": " + message}));
                        markInvalid(message);
                    });
                });
            });
    });

    // --- live counts -------------------------------------------------------------------------------
    var lastStats = null;
    // Revenue in the account's currency with the page's thousands separators, as the rest of the admin.
    function money(value) {
        var currency = root.dataset.currency, places = Number(root.dataset.currencyPlaces || 2);
        if (!currency || value === null || value === undefined || isNaN(Number(value))) return value;
        return Number(value).toLocaleString(document.documentElement.lang || "en",
            {minimumFractionDigits: places, maximumFractionDigits: places}) + " " + currency;
    }
    function showCounts() {
        if (!lastStats) return;
        lastStats.steps.forEach(function (s) {
            var card = document.getElementById("step-" + s.id);
            if (!card) return;
            var box = card.querySelector(".step-counts");
            box.dataset.reached = s.reached; box.dataset.waiting = s.waiting; box.dataset.sent = s.sent;
            var parts = [["reached", s.reached], ["waiting now", s.waiting]];
            if (s.type === "email") parts = parts.concat([["sent", s.sent], ["skipped", s.skipped], ["opens", s.unique_opens], ["clicks", s.unique_clicks], ["revenue", money(s.revenue)]]);
            box.replaceChildren.apply(box, parts.map(function (p) { return el("span", {text: p[0] + ": " + p[1]}); }));
        });
    }
    function refresh() {
        if (!root.dataset.statsUrl) return;
        fetch(root.dataset.statsUrl, {credentials: "same-origin", headers: {Accept: "application/json"}})
            .then(function (r) { return r.ok ? r.json() : null; })
            .then(function (data) { if (data) { lastStats = data; showCounts(); } })
            .catch(function () {});
    }
    setInterval(refresh, 5000);

    // --- run inspector -----------------------------------------------------------------------------
    document.getElementById("inspect-go").addEventListener("click", function () {
        var out = document.getElementById("inspect-result"), q = document.getElementById("inspect-q").value;
        fetch(root.dataset.inspectUrl + "?q=" + encodeURIComponent(q), {credentials: "same-origin"})
            .then(function (r) { return r.json(); })
            .then(function (data) {
                out.replaceChildren();
                if (!data.customer) { out.appendChild(el("p", {text: "No such customer."})); return; }
                if (!data.runs.length) { out.appendChild(el("p", {text: data.customer.email + " never entered this flow."})); return; }
                data.runs.forEach(function (run) {
                    var where = run.status === "active" ? "next: " + run.step_id + (run.due_at ? " at " + run.due_at : "") : run.exit_reason;
                    var box = el("div", {className: "inspect-run border border-base-200 rounded-default p-2 mb-2", "data-status": run.status}, [
                        el("div", {className: "font-semibold", text: "Run #" + run.id + " · " + run.status + (where ? " · " + where : "") + " · entered " + run.entered_at})
                    ]);
                    run.steps.forEach(function (s) {
                        var text = s.step_id + " (" + s.type + "): " + s.status + (s.detail ? " — " + s.detail : "");
                        if (s.message) text += " · email " + s.message + (s.why ? " (" + s.why + ")" : "");
                        box.appendChild(el("div", {className: "inspect-step", "data-step": s.step_id, "data-status": s.status, text: text + " · " + s.at}));
                    });
                    out.appendChild(box);
                });
            });
    });

    state.steps = state.steps || [];
    document.getElementById("flow-exit-rules").appendChild(rulesEditor(state, "exit_rules", "exit-rules"));
    renderTrigger();
    renderSteps();
    refresh();
})();
