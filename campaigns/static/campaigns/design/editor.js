/* The block editor of the admin's template and campaign forms (campaigns/design_widget.py).
 *
 * Editor.js (vendored) holds the blocks; each block type is a small tool below, built from a list of
 * fields: its content (a rich text, a link, an image URL...) and its settings (colours, alignment,
 * padding) in a "Settings" fold. The server is the judge of every value (campaigns/design.py): this
 * file only collects them. As the design changes it is saved into the hidden textarea, compiled on
 * the server (the design preview URL), the compiled HTML and text are written into the form's
 * html_body and text_body (so the form's other previews follow) and shown at 600 and 375 px.
 */
(function () {
  "use strict";

  var ALIGN = ["", "left", "center", "right"];
  var BOX = [
    {name: "align", kind: "select", label: "Alignment", options: ALIGN},
    {name: "padding", kind: "int", label: "Padding (px)", min: 0, max: 80},
    {name: "background", kind: "colour", label: "Background"},
  ];
  var NETWORKS = ["facebook", "instagram", "x", "linkedin", "youtube", "pinterest", "github"];

  var TOOLS = {
    header: {title: "Header with logo", icon: "▣", fields: [
      {name: "logo_url", kind: "url", label: "Logo URL (empty: the brand logo)", main: true},
      {name: "link", kind: "link", label: "Logo links to", main: true},
      {name: "alt", kind: "text", label: "Logo text (alt)"},
      {name: "width", kind: "int", label: "Logo width (px)", min: 40, max: 600},
    ].concat(BOX)},
    heading: {title: "Heading", icon: "H", fields: [
      {name: "text", kind: "rich", label: "Heading", main: true, big: true},
      {name: "level", kind: "select", label: "Size", options: ["", "1", "2", "3"], number: true},
      {name: "color", kind: "colour", label: "Text colour"},
    ].concat(BOX)},
    text: {title: "Text", icon: "¶", fields: [
      {name: "text", kind: "rich", label: "Text", main: true},
      {name: "color", kind: "colour", label: "Text colour"},
      {name: "font_size", kind: "int", label: "Font size (px)", min: 10, max: 32},
    ].concat(BOX)},
    image: {title: "Image", icon: "🖼", fields: [
      {name: "url", kind: "url", label: "Image URL", main: true},
      {name: "link", kind: "link", label: "Links to", main: true},
      {name: "alt", kind: "text", label: "Description (alt)", main: true},
      {name: "width", kind: "int", label: "Width (px)", min: 40, max: 600},
    ].concat(BOX)},
    button: {title: "Button", icon: "⏺", fields: [
      {name: "label", kind: "text", label: "Label", main: true},
      {name: "link", kind: "link", label: "Link", main: true},
      {name: "color", kind: "colour", label: "Button colour"},
      {name: "text_color", kind: "colour", label: "Label colour"},
      {name: "radius", kind: "int", label: "Corner radius (px)", min: 0, max: 40},
    ].concat(BOX)},
    columns: {title: "Columns", icon: "▥", fields: [
      {name: "columns", kind: "columns", label: "Columns", main: true},
      {name: "color", kind: "colour", label: "Text colour"},
    ].concat(BOX)},
    products: {title: "Product cards", icon: "🛒", fields: [
      {name: "source", kind: "select", label: "Products", options: ["skus", "bestsellers", "last_bought"], main: true,
        labels: {skus: "These SKUs", bestsellers: "Best sellers of the last 30 days",
                 last_bought: "Each customer's last bought (topped up with best sellers)"}},
      {name: "skus", kind: "skus", label: "SKUs (comma separated)", main: true},
      {name: "limit", kind: "int", label: "At most", min: 1, max: 12, main: true},
      {name: "per_row", kind: "select", label: "Per row", options: ["", "1", "2", "3"], number: true},
      {name: "button_label", kind: "text", label: "Button label"},
    ].concat(BOX)},
    divider: {title: "Divider", icon: "—", fields: [
      {name: "color", kind: "colour", label: "Colour"},
      {name: "thickness", kind: "int", label: "Thickness (px)", min: 1, max: 10},
    ].concat(BOX)},
    spacer: {title: "Spacer", icon: "↕", fields: [
      {name: "height", kind: "int", label: "Height (px)", min: 4, max: 200, main: true},
      {name: "background", kind: "colour", label: "Background"},
    ]},
    social: {title: "Social links", icon: "@", fields: [
      {name: "links", kind: "social", label: "Links", main: true},
    ].concat(BOX)},
    footer: {title: "Footer", icon: "▁", fields: [
      {name: "text", kind: "rich", label: "Footer text (the postal address, unsubscribe and web version links follow)", main: true},
      {name: "show_address", kind: "bool", label: "Show the postal address"},
      {name: "color", kind: "colour", label: "Text colour"},
    ].concat(BOX)},
  };

  var STARTER = {blocks: [
    {type: "header", data: {}},
    {type: "heading", data: {text: 'Hello {{ customer.first_name|default:"there" }}'}},
    {type: "text", data: {text: "Write your message here."}},
    {type: "button", data: {label: "Visit the shop", link: "https://example.com/"}},
    {type: "footer", data: {}},
  ]};

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; } else { node.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  // The last text input or contenteditable that had the focus: where the Variables menu inserts.
  var lastFocus = null;
  document.addEventListener("focusin", function (event) {
    var target = event.target;
    if (target.closest && target.closest(".design-block") &&
        (target.isContentEditable || target.tagName === "INPUT")) { lastFocus = target; }
  });

  function insertVariable(code) {
    var target = lastFocus;
    if (!target || !document.body.contains(target)) { return false; }
    target.focus();
    if (target.isContentEditable) {
      var selection = window.getSelection();
      if (!selection.rangeCount || !target.contains(selection.anchorNode)) {
        var range = document.createRange();
        range.selectNodeContents(target);
        range.collapse(false);
        selection.removeAllRanges();
        selection.addRange(range);
      }
      document.execCommand("insertText", false, code);
    } else {
      var start = target.selectionStart == null ? target.value.length : target.selectionStart;
      var end = target.selectionEnd == null ? start : target.selectionEnd;
      target.value = target.value.slice(0, start) + code + target.value.slice(end);
      target.selectionStart = target.selectionEnd = start + code.length;
    }
    target.dispatchEvent(new Event("input", {bubbles: true}));
    return true;
  }

  function fieldInput(field, value) {
    var input;
    if (field.kind === "rich") {
      input = el("div", {contenteditable: "true", "class": "design-rich" + (field.big ? " design-rich-big" : ""),
        "data-field": field.name, "data-placeholder": field.label});
      input.innerHTML = value || "";
      return input;
    }
    if (field.kind === "select") {
      input = el("select", {"data-field": field.name});
      field.options.forEach(function (option) {
        var label = option === "" ? "default" : ((field.labels || {})[option] || option);
        var opt = el("option", {value: option, text: label});
        if (String(value == null ? "" : value) === option) { opt.selected = true; }
        input.appendChild(opt);
      });
      return input;
    }
    if (field.kind === "bool") {
      input = el("input", {type: "checkbox", "data-field": field.name});
      input.checked = value !== false;
      return input;
    }
    input = el("input", {type: "text", "data-field": field.name, placeholder: field.kind === "colour" ? "#rrggbb" : ""});
    if (field.kind === "int") { input.setAttribute("inputmode", "numeric"); }
    if (field.kind === "skus") { value = (value || []).join(", "); }
    input.value = value == null ? "" : String(value);
    return input;
  }

  function listEditor(field, items) {
    // Columns (2 or 3, each text, image, link, button label) and social links (network + URL).
    var wrap = el("div", {"class": "design-list", "data-field": field.name});
    var isColumns = field.kind === "columns";
    function addItem(item) {
      item = item || {};
      var row = el("div", {"class": "design-list-item"});
      if (isColumns) {
        row.appendChild(fieldInput({name: "text", kind: "rich", label: "Column text"}, item.text));
        [["image_url", "Image URL"], ["link", "Link"], ["label", "Button label"]].forEach(function (pair) {
          var input = fieldInput({name: pair[0], kind: "text"}, item[pair[0]]);
          input.placeholder = pair[1];
          row.appendChild(input);
        });
      } else {
        row.appendChild(fieldInput({name: "network", kind: "select", options: NETWORKS}, item.network || "facebook"));
        var url = fieldInput({name: "url", kind: "text"}, item.url);
        url.placeholder = "https://…";
        row.appendChild(url);
      }
      var remove = el("button", {type: "button", "class": "design-list-remove", text: "×", title: "Remove"});
      remove.addEventListener("click", function () { row.remove(); wrap.dispatchEvent(new Event("input", {bubbles: true})); });
      row.appendChild(remove);
      wrap.insertBefore(row, add);
    }
    var add = el("button", {type: "button", "class": "design-list-add", text: isColumns ? "+ column" : "+ link"});
    add.addEventListener("click", function () { addItem(); wrap.dispatchEvent(new Event("input", {bubbles: true})); });
    wrap.appendChild(add);
    var start = items && items.length ? items : (isColumns ? [{}, {}] : [{network: "facebook", url: ""}]);
    start.forEach(addItem);
    return wrap;
  }

  function readList(wrap, kind) {
    return Array.prototype.map.call(wrap.querySelectorAll(".design-list-item"), function (row) {
      var item = {};
      row.querySelectorAll("[data-field]").forEach(function (input) {
        var value = input.isContentEditable ? input.innerHTML.trim() : input.value.trim();
        if (value !== "") { item[input.dataset.field] = value; }
      });
      return item;
    });
  }

  function makeTool(type, spec) {
    function Tool(options) {
      this.data = options.data || {};
      this.api = options.api;
    }
    Tool.toolbox = {title: spec.title, icon: '<span class="design-icon">' + spec.icon + "</span>"};
    Tool.enableLineBreaks = type !== "text" && type !== "heading";
    Tool.isReadOnlySupported = true;
    // What Editor.js keeps of the HTML of each field when it saves (the server sanitises again).
    var inline = {b: true, strong: true, i: true, em: true, u: true, br: true, a: {href: true}};
    Tool.sanitize = {};
    spec.fields.forEach(function (field) {
      Tool.sanitize[field.name] = field.kind === "rich" || field.kind === "columns" ? inline : false;
    });
    Tool.prototype.render = function () {
      var data = this.data;
      var block = el("div", {"class": "design-block", "data-type": type});
      block.appendChild(el("div", {"class": "design-block-title", text: spec.title}));
      var main = el("div", {"class": "design-main"});
      var settings = el("div", {"class": "design-settings-grid"});
      spec.fields.forEach(function (field) {
        var input = field.kind === "columns" || field.kind === "social"
          ? listEditor(field, data[field.name]) : fieldInput(field, data[field.name]);
        var row = el("label", {"class": "design-field design-field-" + field.kind},
          [el("span", {text: field.label}), input]);
        (field.main ? main : settings).appendChild(row);
      });
      block.appendChild(main);
      if (settings.children.length) {
        block.appendChild(el("details", {"class": "design-settings"}, [el("summary", {text: "Settings"}), settings]));
      }
      return block;
    };
    Tool.prototype.save = function (block) {
      var out = {};
      spec.fields.forEach(function (field) {
        var input = block.querySelector("[data-field='" + field.name + "']");
        if (!input) { return; }
        if (field.kind === "columns" || field.kind === "social") { out[field.name] = readList(input, field.kind); return; }
        if (field.kind === "bool") { if (!input.checked) { out[field.name] = false; } return; }
        var value = field.kind === "rich" ? input.innerHTML.replace(/&nbsp;/g, " ").trim() : input.value.trim();
        if (value === "" || value === "<br>") { return; }
        if (field.kind === "int" || field.number) { value = /^\d+$/.test(value) ? parseInt(value, 10) : value; }
        if (field.kind === "skus") { value = value.split(",").map(function (s) { return s.trim(); }).filter(Boolean); }
        out[field.name] = value;
      });
      return out;
    };
    return Tool;
  }

  function setup(root) {
    var textarea = document.getElementById(root.dataset.field);
    var form = textarea.form;
    var holder = root.querySelector("#design-holder");
    var errors = root.querySelector("#design-errors");
    var warnings = root.querySelector("#design-warnings");
    function formField(name) { return form ? form.querySelector("[name='" + name + "']") : null; }
    function rowOf(name) {
      var input = formField(name);
      if (!input) { return null; }
      return input.closest(".field-" + name) || input.closest(".form-row") || input.parentElement;
    }
    function csrf() { var c = form.querySelector("[name=csrfmiddlewaretoken]"); return c ? c.value : ""; }

    var tools = {};
    Object.keys(TOOLS).forEach(function (type) {
      tools[type] = {"class": makeTool(type, TOOLS[type]), inlineToolbar: ["bold", "italic", "link"]};
    });
    var initial = null;
    try { initial = textarea.value.trim() ? JSON.parse(textarea.value) : null; } catch (e) { initial = null; }
    var editor = null;
    var timer = null;
    var saving = null;

    function saveNow() {
      if (!editor || root.dataset.mode !== "blocks") { return Promise.resolve(); }
      saving = editor.save().then(function (output) {
        textarea.value = JSON.stringify({blocks: output.blocks.map(function (b) { return {type: b.type, data: b.data}; })});
      });
      return saving;
    }
    function preview() {
      if (root.dataset.mode !== "blocks") { return; }
      saveNow().then(function () {
        var body = new URLSearchParams();
        body.append("design", textarea.value);
        body.append("subject", (formField("subject") || {}).value || "");
        body.append("name", (formField("name") || {}).value || "");
        body.append("customer", root.querySelector("#design-customer").value);
        body.append("kind", (formField("kind") || {}).value || "marketing");  // an order email previews as one
        return fetch(root.dataset.previewUrl, {method: "POST", credentials: "same-origin",
          headers: {"X-CSRFToken": csrf()}, body: body});
      }).then(function (response) { return response.json(); }).then(function (data) {
        var problems = Object.keys(data.errors || {}).map(function (k) { return data.errors[k].join(" "); });
        errors.textContent = problems.join(" · ");
        root.dataset.state = problems.length ? "error" : "ok";
        if (problems.length) { return; }
        warnings.textContent = (data.warnings || []).join(" ");
        ["html_body", "text_body"].forEach(function (name) {
          var input = formField(name);
          if (input && input.value !== data[name]) {
            input.value = data[name];
            input.dispatchEvent(new Event("input", {bubbles: true}));
          }
        });
        ["#design-preview-desktop", "#design-preview-mobile"].forEach(function (id) {
          var frame = root.querySelector(id);
          if (frame.srcdoc !== data.html) { frame.srcdoc = data.html; }  // unchanged: no reload, no flicker
        });
        root.querySelector("#design-preview-text").textContent = data.text;
        root.dataset.previewed = String(Date.now());
      }).catch(function (error) { errors.textContent = String(error); });
    }
    function later() { clearTimeout(timer); timer = setTimeout(preview, 500); }

    function startEditor(data) {
      if (editor) { return; }
      editor = new window.EditorJS({
        holder: holder,
        tools: tools,
        defaultBlock: "text",
        data: data,
        minHeight: 60,
        onChange: later,
        onReady: function () {
          if (window.DragDrop) { new window.DragDrop(editor); }
          root.dataset.ready = "true";
          preview();
        },
      });
      window.designEditor = editor;  // for browser tests and the console
    }

    function setMode(mode) {
      root.dataset.mode = mode;
      root.querySelector("#design-mode-blocks").setAttribute("aria-pressed", String(mode === "blocks"));
      root.querySelector("#design-mode-html").setAttribute("aria-pressed", String(mode === "html"));
      ["html_body", "text_body"].forEach(function (name) {
        var row = rowOf(name);
        if (row) { row.hidden = mode === "blocks"; }
      });
      if (mode === "blocks") {
        startEditor(initial || STARTER);
      } else {
        textarea.value = "";  // a raw HTML template: the HTML and text fields are the content
      }
    }
    root.querySelector("#design-mode-blocks").addEventListener("click", function () { setMode("blocks"); later(); });
    root.querySelector("#design-mode-html").addEventListener("click", function () {
      if (root.dataset.mode === "blocks" && !window.confirm("Write raw HTML instead? The compiled HTML stays; the blocks are dropped on save.")) { return; }
      setMode("html");
    });
    root.querySelector("#design-recipe").addEventListener("change", function (event) {
      var recipes = JSON.parse(document.getElementById("design-recipes").textContent);
      var recipe = recipes[event.target.value];
      event.target.value = "";
      if (!recipe || !window.confirm("Replace the blocks with this recipe?")) { return; }
      if (root.dataset.mode !== "blocks") { setMode("blocks"); }
      editor.isReady.then(function () { return editor.render(recipe); }).then(later);
    });
    root.querySelector("#design-customer").addEventListener("input", later);
    root.querySelector("#design-test-send").addEventListener("click", function () {
      var out = root.querySelector("#design-test-result");
      out.textContent = "…";
      saveNow().then(function () {
        var body = new URLSearchParams();
        body.append("design", textarea.value);
        body.append("subject", (formField("subject") || {}).value || "");
        body.append("name", (formField("name") || {}).value || "");
        body.append("emails", root.querySelector("#design-test-emails").value);
        return fetch(root.dataset.testUrl, {method: "POST", credentials: "same-origin",
          headers: {"X-CSRFToken": csrf()}, body: body});
      }).then(function (response) { return response.json(); }).then(function (data) {
        var problems = Object.keys(data.errors || {}).map(function (k) { return k + ": " + data.errors[k].join(" "); });
        out.textContent = problems.length ? problems.join(" · ") : data.results.map(function (r) {
          return r.sent ? "Test copy sent to " + r.email + "." : r.email + ": " + r.error;
        }).join(" ");
      }).catch(function (error) { out.textContent = String(error); });
    });
    holder.addEventListener("input", later);
    root.querySelector("#design-variables").addEventListener("change", function (event) {
      var code = event.target.value;
      event.target.value = "";
      if (code && !insertVariable(code)) { errors.textContent = "Click into a text or link first, then pick a variable."; }
    });
    if (form) {
      form.addEventListener("submit", function (event) {
        if (root.dataset.mode !== "blocks" || root.dataset.submitting) { return; }
        event.preventDefault();
        var submitter = event.submitter;
        saveNow().then(function () {
          root.dataset.submitting = "true";
          // The admin reads which button was pressed (_save, _continue, _addanother) from its name.
          if (submitter && submitter.name) {
            form.appendChild(el("input", {type: "hidden", name: submitter.name, value: submitter.value || "1"}));
          }
          HTMLFormElement.prototype.submit.call(form);
        }).catch(function (error) { errors.textContent = String(error); });
      });
    }
    // A saved design opens in blocks; raw HTML stays raw; a campaign without a design of its own
    // sends its template's content, so it starts there too (the Blocks button makes one of its own).
    var raw = (formField("html_body") && formField("html_body").value.trim()) || formField("template");
    setMode(initial ? "blocks" : (raw ? "html" : "blocks"));
  }

  function init() {
    var root = document.getElementById("design-editor");
    if (root && !root.dataset.initialised && window.EditorJS) {
      root.dataset.initialised = "true";
      setup(root);
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
