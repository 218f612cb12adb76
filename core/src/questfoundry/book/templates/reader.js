// The reader's enhancements: the place kept between visits, the path so far, Back and Restart,
// keys, focus on the new section. The page shows one section without any of this (CSS :target);
// this script only moves the address and reads the page, never builds markup from data.
(function () {
  "use strict";
  var body = document.body;
  var sections = document.querySelectorAll(".story > section");
  var known = {};
  for (var i = 0; i < sections.length; i++) known[sections[i].id] = sections[i];
  var start = body.getAttribute("data-start");
  // every file:// page shares one origin: the key names the book and its language
  var key = "questfoundry:" + body.getAttribute("data-book") + ":" + document.documentElement.lang;
  var back = document.getElementById("back");
  var restart = document.getElementById("restart");
  var trail = document.getElementById("trail");
  var path = load();
  var pushed = 0;
  var replacing = false;

  function load() {
    try {
      var saved = JSON.parse(window.localStorage.getItem(key) || "null");
      if (saved && Object.prototype.toString.call(saved.path) === "[object Array]") {
        var kept = [];
        for (var j = 0; j < saved.path.length; j++) {
          var id = saved.path[j];
          if (typeof id === "string" && Object.prototype.hasOwnProperty.call(known, id)) kept.push(id);
        }
        return kept;
      }
    } catch (e) { /* no storage here: the place is not kept */ }
    return [];
  }

  function save() {
    try { window.localStorage.setItem(key, JSON.stringify({ path: path })); } catch (e) { /* kept for this visit only */ }
  }

  // the section on screen: the one the address names, else the start (as the style sheet has it)
  function named() {
    var id = decodeURIComponent(location.hash.slice(1));
    return Object.prototype.hasOwnProperty.call(known, id) ? id : null;
  }
  function here() { return named() || start; }
  // a codex entry the address names is read beside the story: never a step of the path
  function aside() {
    var id = decodeURIComponent(location.hash.slice(1));
    return id.indexOf("codex-") === 0 && document.getElementById(id) !== null;
  }

  function go(id, replace) {
    if (replace) {
      replacing = true;
      location.replace("#" + id);
    } else {
      location.hash = "#" + id;
    }
  }

  // the reader arrived at the section the address names (a choice, Back, the history, a reload)
  function arrive(opening) {
    var id = here();
    var wasReplace = replacing;
    replacing = false;
    var state = history.state;
    if (state && state.book === key && path[state.step] === id) {
      path.length = state.step + 1;
    } else if (path[path.length - 1] !== id) {
      path.push(id);
      if (!wasReplace) pushed += 1;
    }
    history.replaceState({ book: key, step: path.length - 1 }, "");
    save();
    show(id, opening === true);
  }

  function show(id, opening) {
    while (trail.firstChild) trail.removeChild(trail.firstChild);
    var first = Math.max(0, path.length - 12);
    if (first > 0) {
      var more = document.createElement("li");
      more.className = "more";
      more.textContent = "… ";
      trail.appendChild(more);
    }
    for (var k = first; k < path.length; k++) {
      var item = document.createElement("li");
      item.textContent = known[path[k]].getAttribute("data-number");
      trail.appendChild(item);
    }
    back.disabled = path.length < 2;
    if (!opening) {
      window.scrollTo(0, 0);
      known[id].querySelector("h2").focus({ preventScroll: true });
    }
  }

  function goBack() {
    if (aside()) { history.back(); return; }
    if (path.length < 2) return;
    var state = history.state;
    if (pushed > 0 && state && state.book === key && state.step === path.length - 1) {
      pushed -= 1;
      history.back();
    } else {
      path.pop();
      go(path[path.length - 1], true);
    }
  }

  function begin() {
    path = [];
    save();
    if (here() === start) arrive(); else go(start, false);
  }

  function onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey || event.isComposing) return;
    if (event.key === "b" || event.key === "B") { event.preventDefault(); goBack(); return; }
    if (/^[1-9]$/.test(event.key) && !aside()) {
      var links = known[here()].querySelectorAll(".choices a");
      var chosen = links[Number(event.key) - 1];
      if (chosen) { event.preventDefault(); chosen.click(); }
    }
  }

  back.addEventListener("click", goBack);
  restart.addEventListener("click", begin);
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", function () { if (!aside()) arrive(false); });
  document.getElementById("controls").hidden = false;
  document.getElementById("keys").hidden = false;
  if (named() === null && path.length > 0 && path[path.length - 1] !== start) {
    go(path[path.length - 1], true);  // the place kept from the last visit
  } else if (!aside()) {
    arrive(true);
  }
})();
