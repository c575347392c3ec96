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
    var OPERATORS = ["=", "!=", "contains", "doesNotContain", "in", "notIn", ">", "<", ">=", "<=", "inLastDays", "notInLastDays", "null", "notNull"];

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
    function laterSteps(index) {
        return [["", "the next step"]].concat(state.steps.slice(index + 1).map(function (s) { return [s.id, s.id + " (" + (LABELS[s.type] || s.type) + ")"]; }));
    }
    function paths(step, index) {
        var yesLabel = step.type === "branch" ? "Yes, the rules hold → " : "Yes, it happened → ";
        var noLabel = step.type === "branch" ? "No → " : "No, timed out → ";
        return el("div", {className: "paths"}, [
            el("div", {className: "path yes"}, [el("span", {text: yesLabel}), select("step-yes", laterSteps(index), step.yes || "", function (v) { if (v) step.yes = v; else delete step.yes; })]),
            el("div", {className: "path no"}, [el("span", {text: noLabel}), select("step-no", laterSteps(index), step.no || "", function (v) { if (v) step.no = v; else delete step.no; })])
        ]);
    }
    function ruleEditor(step) {
        var rules = step.rules && step.rules.rules ? step.rules : (step.rules = {combinator: "and", rules: [{field: "total_spent", operator: ">", value: "0"}]});
        if (rules.rules.length !== 1 || rules.rules[0].rules) {
            return el("span", {text: rules.rules.length + " conditions (edit them in a segment and copy the rules)"});
        }
        var rule = rules.rules[0];
        return el("span", {}, [
            el("span", {text: "the customer's "}),
            input("step-rule-field", rule.field, function (v) { rule.field = v; }),
            select("step-rule-operator", OPERATORS, rule.operator, function (v) { rule.operator = v; }),
            input("step-rule-value", rule.value, function (v) { rule.value = v; })
        ]);
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
    function move(index, by) {
        var target = index + by;
        if (target < 0 || target >= state.steps.length) return;
        var step = state.steps.splice(index, 1)[0];
        state.steps.splice(target, 0, step);
        renderSteps();
    }
    function renderSteps() {
        var canvas = document.getElementById("flow-steps");
        canvas.replaceChildren();
        state.steps.forEach(function (step, index) {
            if (index) canvas.appendChild(el("div", {className: "connector"}));
            var card = el("div", {className: "step", id: "step-" + step.id, "data-type": step.type}, [
                el("div", {className: "flex flex-row gap-2 items-center"}, [
                    el("span", {className: "font-semibold", text: (index + 1) + ". " + (LABELS[step.type] || step.type)}),
                    el("code", {className: "text-xs", text: step.id}),
                    el("span", {className: "grow"}),
                    button("step-up", "↑", function () { move(index, -1); }),
                    button("step-down", "↓", function () { move(index, 1); }),
                    button("step-remove", "✕", function () { state.steps.splice(index, 1); renderSteps(); })
                ]),
                body(step, index),
                el("div", {className: "step-counts mt-2"})
            ]);
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
    var save = document.getElementById("flow-save");
    if (save) save.addEventListener("click", function () {
        var errors = document.getElementById("flow-errors"), result = document.getElementById("flow-save-result");
        errors.replaceChildren(); result.textContent = "";
        fetch(root.dataset.saveUrl, {method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json", "X-CSRFToken": csrf()}, body: JSON.stringify(collect())})
            .then(function (response) { return response.json().then(function (data) { return [response.ok, data]; }); })
            .then(function (pair) {
                if (pair[0]) { result.textContent = "Saved (version " + pair[1].version + ")."; return; }
                Object.keys(pair[1].errors || {}).forEach(function (field) {
                    pair[1].errors[field].forEach(function (message) { errors.appendChild(el("div", {text: field + ": " + message})); });
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
    renderTrigger();
    renderSteps();
    refresh();
})();
