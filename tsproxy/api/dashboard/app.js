// tsproxy dashboard: reads Traefik's API (/api/...) and tsproxy's request counts
// (/api/tsproxy/stats) from the entrypoint that serves it, and redraws every 2 seconds.
// No framework, no build step; text goes into the page through textContent only.
"use strict";

(function () {
  var REFRESH_MS = 2000;
  var PROVIDER = "@kubernetescrd";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") {
        node.textContent = attrs[key];
      } else if (key === "className") {
        node.className = attrs[key];
      } else if (key.indexOf("data-") === 0) {
        node.setAttribute(key, String(attrs[key]));
      } else {
        node.setAttribute(key, attrs[key]);
      }
    });
    (children || []).forEach(function (child) {
      if (child !== null && child !== undefined) {
        node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
      }
    });
    return node;
  }

  function replaceChildren(parent, children) {
    while (parent.firstChild) {
      parent.removeChild(parent.firstChild);
    }
    children.forEach(function (child) { parent.appendChild(child); });
  }

  function getJSON(url) {
    return fetch(url, { cache: "no-store" }).then(function (response) {
      if (!response.ok) {
        throw new Error(url + ": " + response.status);
      }
      return response.json().then(function (body) {
        return { body: body, next: response.headers.get("X-Next-Page") };
      });
    });
  }

  // Every page of a list endpoint, following X-Next-Page until it says 1.
  function getAll(path) {
    var items = [];
    function page(number) {
      return getJSON(path + "?per_page=100&page=" + number).then(function (result) {
        items = items.concat(result.body);
        var next = parseInt(result.next || "1", 10);
        return next > number && number < 1000 ? page(next) : items;
      });
    }
    return page(1);
  }

  // A reference as a service's key: name@provider as written, else in the referrer's
  // provider (Traefik's rule), the CRD provider when none is known.
  function qualified(name, provider) {
    return name.indexOf("@") >= 0 ? name : name + (provider ? "@" + provider : PROVIDER);
  }

  function byName(list) {
    var map = {};
    list.forEach(function (item) { map[item.name] = item; });
    return map;
  }

  function percent(part, whole) {
    if (!whole) {
      return "–";
    }
    return (100 * part / whole).toFixed(1) + "%";
  }

  // Traefik's default priority is the rule's length in bytes.
  function effectivePriority(router) {
    if (router.priority) {
      return String(router.priority);
    }
    if (!router.rule) {
      return "";
    }
    return new TextEncoder().encode(router.rule).length + " (default)";
  }

  // Requests and errors of a service: its own counts, or for a service nothing counts
  // directly, the sum over what it sends requests to (a mirroring service's main only).
  function counted(name, services, stats, seen, provider) {
    var key = qualified(name, provider);
    if (stats[key]) {
      return { requests: stats[key].requests, errors: stats[key].errors };
    }
    var service = services[key];
    var total = { requests: 0, errors: 0 };
    if (!service || seen[key]) {
      return total;
    }
    seen[key] = true;
    var below = [];
    if (service.weighted) {
      below = service.weighted.services.map(function (child) { return child.name; });
    } else if (service.mirroring) {
      below = [service.mirroring.service];
    }
    below.forEach(function (child) {
      var counts = counted(child, services, stats, seen, service.provider);
      total.requests += counts.requests;
      total.errors += counts.errors;
    });
    return total;
  }

  function bar(className, fraction) {
    var fill = el("span", { className: "fill " + className });
    fill.style.width = Math.max(0, Math.min(100, 100 * fraction)).toFixed(1) + "%";
    return el("span", { className: "bar" }, [fill]);
  }

  function weightedTable(service, services, stats, depth) {
    var children = service.weighted.services;
    var totalWeight = children.reduce(function (sum, child) { return sum + (child.weight || 0); }, 0);
    var counts = children.map(function (child) { return counted(child.name, services, stats, {}, service.provider); });
    var totalRequests = counts.reduce(function (sum, c) { return sum + c.requests; }, 0);
    var rows = [];
    children.forEach(function (child, index) {
      var count = counts[index];
      var configured = totalWeight ? child.weight / totalWeight : 0;
      var live = totalRequests ? count.requests / totalRequests : 0;
      rows.push(el("tr", {
        className: "child",
        "data-child": child.name,
        "data-weight": child.weight,
        "data-requests": count.requests,
        "data-errors": count.errors,
        "data-configured-share": configured.toFixed(4),
        "data-live-share": live.toFixed(4)
      }, [
        el("td", { className: "name", text: child.name }),
        el("td", { className: "num weight", text: String(child.weight) }),
        el("td", { className: "num" }, [percent(child.weight, totalWeight), bar("configured", configured)]),
        el("td", { className: "num requests", text: String(count.requests) }),
        el("td", { className: "num" }, [percent(count.requests, totalRequests), bar("live", live)]),
        el("td", { className: "num errors", title: count.errors + " errors", text: percent(count.errors, count.requests) })
      ]));
      var below = subtree(child.name, services, stats, depth + 1, service.provider);
      if (below) {
        rows.push(el("tr", { className: "below" }, [el("td", { colspan: "6" }, [below])]));
      }
    });
    return el("table", { className: "children" }, [
      el("thead", {}, [el("tr", {}, [
        el("th", { text: "Child" }), el("th", { text: "Weight", title: "configured weight and share" }),
        el("th", { text: "Share" }), el("th", { text: "Requests" }),
        el("th", { text: "Live", title: "share of the children's requests" }),
        el("th", { text: "Errors", title: "error rate (hover a cell for the count)" })
      ])]),
      el("tbody", {}, rows)
    ]);
  }

  function mirroringList(service, services, stats, depth) {
    var mirroring = service.mirroring;
    var items = [el("li", { className: "main", "data-child": mirroring.service, "data-role": "main" }, [
      el("span", { className: "tag", text: "main" }), " " + mirroring.service,
      subtree(mirroring.service, services, stats, depth + 1, service.provider)
    ])];
    (mirroring.mirrors || []).forEach(function (mirror) {
      items.push(el("li", { className: "mirror", "data-child": mirror.name, "data-role": "mirror", "data-percent": mirror.percent }, [
        el("span", { className: "tag", text: "mirror " + mirror.percent + "%" }), " " + mirror.name,
        subtree(mirror.name, services, stats, depth + 1, service.provider)
      ]));
    });
    return el("ul", { className: "tree" }, items);
  }

  function serversList(service) {
    var balancer = service.loadBalancer || {};
    var status = service.serverStatus || {};
    var items = (balancer.servers || []).map(function (server) {
      var address = server.url || server.address;
      var state = status[address] || "";
      return el("li", { className: "server", "data-server": address }, [
        address + " ", state ? el("span", { className: "status " + state.toLowerCase(), text: state }) : null
      ]);
    });
    if (!items.length) {
      items.push(el("li", { className: "muted", text: "no servers" }));
    }
    return el("ul", { className: "servers" }, items);
  }

  // What a service contains, drawn inside its parent (depth-limited against cycles). A
  // disabled service is not opened inside another: it did not build, often for a cycle.
  function subtree(name, services, stats, depth, provider) {
    var service = services[qualified(name, provider)];
    if (!service || depth > 6 || (depth > 0 && service.status === "disabled")) {
      return null;
    }
    if (service.weighted) {
      return weightedTable(service, services, stats, depth);
    }
    if (service.mirroring) {
      return mirroringList(service, services, stats, depth);
    }
    return serversList(service);
  }

  // What Traefik's "error" field says of a disabled router or service (or one with a
  // warning), one line each; null when there is nothing to say.
  function errorList(item) {
    var errors = item.error || [];
    if (!errors.length) {
      return null;
    }
    return el("ul", { className: "errors " + item.status }, errors.map(function (text) {
      return el("li", { text: text });
    }));
  }

  function serviceCard(service, services, stats) {
    var usedBy = service.usedBy || [];
    var disabled = service.status === "disabled";
    return el("div", {
      className: "service",
      "data-service": service.name,
      "data-type": service.type || "",
      "data-status": service.status
    }, [
      el("h3", {}, [
        service.name + " ",
        el("span", { className: "tag", text: service.type || "" }),
        " ",
        el("span", { className: "status " + service.status, text: service.status })
      ]),
      errorList(service),
      el("p", { className: "muted", text: usedBy.length ? "used by " + usedBy.join(", ") : "used by no router" }),
      // A service that did not build routes nothing: show what it was meant to contain,
      // without request counts.
      subtree(service.name, services, disabled ? {} : stats, 0)
    ]);
  }

  function tlsText(tls) {
    if (!tls) {
      return "";
    }
    if (tls.passthrough) {
      return "passthrough";
    }
    return "options: " + (tls.options || "default");
  }

  function routerRow(router, kind) {
    var cells = [el("td", { className: "name", text: router.name })];
    if (kind !== "udp") {
      cells.push(el("td", {}, [el("code", { text: router.rule || "" })]));
    }
    cells.push(el("td", { text: (router.using || router.entryPoints || []).join(", ") }));
    if (kind !== "udp") {
      cells.push(el("td", { className: "num", text: effectivePriority(router) }));
      cells.push(el("td", { text: tlsText(router.tls) }));
    }
    cells.push(el("td", { text: router.service || "" }));
    cells.push(el("td", {}, [
      el("span", { className: "status " + router.status, text: router.status }),
      errorList(router)
    ]));
    return el("tr", {
      "data-router": router.name,
      "data-kind": kind,
      "data-status": router.status,
      "data-service": router.service ? qualified(router.service, router.provider) : ""
    }, cells);
  }

  function emptyRow(columns, text) {
    return el("tr", { className: "empty" }, [el("td", { colspan: String(columns), className: "muted", text: text })]);
  }

  function renderOverview(overview) {
    var cards = [];
    ["http", "tcp", "udp"].forEach(function (scheme) {
      var section = overview[scheme] || {};
      Object.keys(section).forEach(function (kind) {
        var counts = section[kind];
        var className = "card" + (counts.errors ? " has-errors" : counts.warnings ? " has-warnings" : "");
        cards.push(el("div", {
          className: className,
          "data-overview": scheme + "-" + kind,
          "data-total": counts.total,
          "data-errors": counts.errors,
          "data-warnings": counts.warnings
        }, [
          el("div", { className: "label", text: scheme.toUpperCase() + " " + kind }),
          el("div", { className: "total", text: String(counts.total) }),
          el("div", { className: "muted", text: counts.warnings + " warnings, " + counts.errors + " errors" })
        ]));
      });
    });
    replaceChildren(document.getElementById("overview-cards"), cards);
  }

  function renderEntrypoints(entrypoints) {
    var rows = entrypoints.map(function (ep) {
      var transport = ep.transport || {};
      var life = transport.lifeCycle || {};
      var responding = transport.respondingTimeouts || {};
      return el("tr", { "data-entrypoint": ep.name }, [
        el("td", { className: "name", text: ep.name }),
        el("td", { text: ep.address }),
        el("td", { text: life.graceTimeOut || "0s" }),
        el("td", { text: (responding.readTimeout || "0s") + " / " + (responding.idleTimeout || "0s") })
      ]);
    });
    replaceChildren(document.getElementById("entrypoints-body"), rows.length ? rows : [emptyRow(4, "none")]);
  }

  function renderRouters(id, routers, kind, columns) {
    var rows = routers.map(function (router) { return routerRow(router, kind); });
    replaceChildren(document.getElementById(id), rows.length ? rows : [emptyRow(columns, "none")]);
  }

  // Services with a tree (weighted, mirroring) first, then load balancers, each by name.
  function renderServices(id, list, stats) {
    var services = byName(list);
    var ordered = list.filter(function (s) { return !s.loadBalancer; })
      .concat(list.filter(function (s) { return s.loadBalancer; }));
    var cards = ordered.map(function (service) { return serviceCard(service, services, stats); });
    replaceChildren(document.getElementById(id), cards.length ? cards : [el("p", { className: "muted", text: "none" })]);
  }

  function setState(state, text) {
    var node = document.getElementById("state");
    node.setAttribute("data-state", state);
    node.textContent = text;
  }

  function refresh() {
    return Promise.all([
      getJSON("/api/overview"),
      getJSON("/api/version"),
      getAll("/api/entrypoints"),
      getAll("/api/http/routers"),
      getAll("/api/http/services"),
      getAll("/api/tcp/routers"),
      getAll("/api/tcp/services"),
      getAll("/api/udp/routers"),
      getAll("/api/udp/services"),
      getJSON("/api/tsproxy/stats")
    ]).then(function (results) {
      var stats = results[9].body;
      var counts = stats.services || {};
      renderOverview(results[0].body);
      document.getElementById("version").textContent =
        "version " + results[1].body.Version + ", started " + results[1].body.startDate;
      renderEntrypoints(results[2]);
      renderRouters("http-routers-body", results[3], "http", 7);
      renderServices("http-services", results[4], counts);
      renderRouters("tcp-routers-body", results[5], "tcp", 7);
      renderServices("tcp-services", results[6], counts);
      renderRouters("udp-routers-body", results[7], "udp", 4);
      renderServices("udp-services", results[8], counts);
      document.getElementById("stats-note").textContent = stats.metrics
        ? "Requests and errors are counted per service since the proxy started; a service used by several parents counts all of its requests."
        : "Request counts need metrics.prometheus in tsproxy.yaml.";
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.setAttribute("data-refreshes", String(Number(document.body.getAttribute("data-refreshes")) + 1));
      setState("ok", "live");
    }).catch(function (error) {
      setState("error", "cannot reach the API: " + error.message);
    });
  }

  function loop() {
    refresh().then(function () { window.setTimeout(loop, REFRESH_MS); });
  }

  loop();
})();
