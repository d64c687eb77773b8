// tsproxy dashboard: reads Traefik's API (/api/...) and tsproxy's live counts
// (/api/tsproxy/stats) from the entrypoint that serves it, and redraws every 2 seconds.
// Pages by location hash: #/ (overview), #/<http|tcp|udp>/<routers|services|middlewares>,
// #/<http|tcp|udp>/routers/<name> (a router's chain). No framework, no build step; text
// goes into the page through textContent only.
"use strict";

(function () {
  var REFRESH_MS = 2000;
  var PROVIDER = "@kubernetescrd";
  var data = null; // the last answers of the API, see refresh()

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null) {
        return;
      }
      if (key === "text") {
        node.textContent = value;
      } else if (key === "className") {
        node.className = value;
      } else {
        node.setAttribute(key, String(value));
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
    children.forEach(function (child) {
      if (child) {
        parent.appendChild(child);
      }
    });
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

  // Every page of a list endpoint, following X-Next-Page until it says 1. A list the
  // proxy does not serve (404) is empty.
  function getAll(path) {
    var items = [];
    function page(number) {
      return fetch(path + "?per_page=100&page=" + number, { cache: "no-store" }).then(function (response) {
        if (response.status === 404) {
          return items;
        }
        if (!response.ok) {
          throw new Error(path + ": " + response.status);
        }
        var next = parseInt(response.headers.get("X-Next-Page") || "1", 10);
        return response.json().then(function (body) {
          items = items.concat(body);
          return next > number && number < 1000 ? page(next) : items;
        });
      });
    }
    return page(1);
  }

  // A reference as a service's key: name@provider as written, else in the referrer's
  // provider (Traefik's rule), the CRD provider when none is known.
  function qualified(name, provider) {
    return name.indexOf("@") >= 0 ? name : name + (provider ? "@" + provider : PROVIDER);
  }

  // The provider of a qualified name ("kubernetescrd" of "a@kubernetescrd").
  function providerOf(name) {
    var at = (name || "").lastIndexOf("@");
    return at >= 0 ? name.slice(at + 1) : "";
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

  function bar(className, fraction) {
    var fill = el("span", { className: "fill " + className });
    fill.style.width = Math.max(0, Math.min(100, 100 * fraction)).toFixed(1) + "%";
    return el("span", { className: "bar" }, [fill]);
  }

  function statusTag(status) {
    return el("span", { className: "status " + (status || "").toLowerCase(), text: status || "" });
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

  function errorList(item) {
    var errors = item.error || [];
    if (!errors.length) {
      return null;
    }
    return el("ul", { className: "errors " + item.status }, errors.map(function (text) {
      return el("li", { text: text });
    }));
  }

  // -- counts -----------------------------------------------------------------------------

  // What `parent` sent `child`: {requests, errors} for HTTP, sessions for TCP and UDP.
  function childCount(protocol, parent, child) {
    var stats = data.stats;
    var key = qualified(child, providerOf(qualified(parent)));
    if (protocol === "http") {
      var children = (stats.children || {})[qualified(parent)] || {};
      return children[key] || { requests: 0, errors: 0 };
    }
    var layer = stats[protocol] || {};
    var sessions = ((layer.children || {})[qualified(parent)] || {})[key] || 0;
    return { requests: sessions, errors: 0 };
  }

  function ownCount(protocol, name) {
    var stats = data.stats;
    if (protocol === "http") {
      return (stats.services || {})[qualified(name)] || { requests: 0, errors: 0 };
    }
    var layer = stats[protocol] || {};
    return { requests: (layer.services || {})[qualified(name)] || 0, errors: 0 };
  }

  function unit(protocol) {
    return protocol === "http" ? "Requests" : protocol === "tcp" ? "Connections" : "Sessions";
  }

  // -- service trees ------------------------------------------------------------------------

  function weightedTable(protocol, service, services, depth) {
    var children = service.weighted.services;
    var totalWeight = children.reduce(function (sum, child) { return sum + (child.weight || 0); }, 0);
    var counts = children.map(function (child) { return childCount(protocol, service.name, child.name); });
    var totalRequests = counts.reduce(function (sum, c) { return sum + c.requests; }, 0);
    var rows = [];
    children.forEach(function (child, index) {
      var count = counts[index];
      var configured = totalWeight ? child.weight / totalWeight : 0;
      var live = totalRequests ? count.requests / totalRequests : 0;
      var state = serviceState(protocol, child.name, services, providerOf(service.name));
      rows.push(el("tr", {
        className: "child",
        "data-child": child.name,
        "data-weight": child.weight,
        "data-requests": count.requests,
        "data-errors": count.errors,
        "data-configured-share": configured.toFixed(4),
        "data-live-share": live.toFixed(4),
        "data-health": state
      }, [
        el("td", { className: "name" }, [child.name + " ", state ? statusTag(state) : null]),
        el("td", { className: "num weight", text: String(child.weight) }),
        el("td", { className: "num" }, [percent(child.weight, totalWeight), bar("configured", configured)]),
        el("td", { className: "num requests", text: String(count.requests) }),
        el("td", { className: "num" }, [percent(count.requests, totalRequests), bar("live", live)]),
        el("td", { className: "num errors", title: count.errors + " errors", text: protocol === "http" ? percent(count.errors, count.requests) : "" })
      ]));
      var below = subtree(protocol, child.name, services, depth + 1, providerOf(service.name));
      if (below) {
        rows.push(el("tr", { className: "below" }, [el("td", { colspan: "6" }, [below])]));
      }
    });
    return el("table", { className: "children" }, [
      el("thead", {}, [el("tr", {}, [
        el("th", { text: "Child" }), el("th", { text: "Weight" }),
        el("th", { text: "Configured share" }), el("th", { text: unit(protocol) }),
        el("th", { text: "Live share", title: "share of what this service sent its children" }),
        el("th", { text: protocol === "http" ? "Errors" : "" })
      ])]),
      el("tbody", {}, rows)
    ]);
  }

  function mirroringBlock(service, services, depth) {
    var mirroring = service.mirroring;
    var served = ownCount("http", service.name).requests;
    var mirrored = (data.stats.mirrored || {})[qualified(service.name)] || { copies: 0, errors: 0 };
    var items = [el("li", { className: "main", "data-child": mirroring.service, "data-role": "main" }, [
      el("span", { className: "tag", text: "main" }), " " + mirroring.service,
      subtree("http", mirroring.service, services, depth + 1, providerOf(service.name))
    ])];
    (mirroring.mirrors || []).forEach(function (mirror) {
      items.push(el("li", { className: "mirror", "data-child": mirror.name, "data-role": "mirror", "data-percent": mirror.percent }, [
        el("span", { className: "tag", text: "mirror " + mirror.percent + "%" }), " " + mirror.name,
        subtree("http", mirror.name, services, depth + 1, providerOf(service.name))
      ]));
    });
    return el("div", { className: "mirroring" }, [
      el("p", { className: "counts", "data-served": served, "data-mirrored": mirrored.copies, "data-mirror-errors": mirrored.errors,
        text: "served " + served + ", mirrored " + mirrored.copies + (mirrored.errors ? " (" + mirrored.errors + " copies failed)" : "") }),
      el("ul", { className: "tree" }, items)
    ]);
  }

  function failoverBlock(service, services, depth) {
    var failover = service.failover;
    return el("ul", { className: "tree" }, [
      el("li", { "data-child": failover.service, "data-role": "service" }, [
        el("span", { className: "tag", text: "service" }), " " + failover.service,
        subtree("http", failover.service, services, depth + 1, providerOf(service.name))
      ]),
      el("li", { "data-child": failover.fallback, "data-role": "fallback" }, [
        el("span", { className: "tag", text: "fallback" }), " " + failover.fallback,
        subtree("http", failover.fallback, services, depth + 1, providerOf(service.name))
      ])
    ]);
  }

  function serversList(service) {
    var balancer = service.loadBalancer || {};
    var status = service.serverStatus || {};
    var items = (balancer.servers || []).map(function (server) {
      var address = server.url || server.address;
      var state = status[address] || "";
      return el("li", { className: "server", "data-server": address, "data-status": state }, [
        address + " ", state ? statusTag(state) : null
      ]);
    });
    if (!items.length) {
      items.push(el("li", { className: "muted", text: "no servers" }));
    }
    return el("ul", { className: "servers" }, items);
  }

  // UP when some server of a load balancer is up, DOWN when all are down, "" when unknown.
  function serviceState(protocol, name, services, provider) {
    var service = services[qualified(name, provider)];
    if (!service || !service.serverStatus) {
      return "";
    }
    var states = Object.keys(service.serverStatus).map(function (k) { return service.serverStatus[k]; });
    if (!states.length) {
      return "";
    }
    return states.indexOf("UP") >= 0 ? "UP" : "DOWN";
  }

  // What a service contains, drawn inside its parent (depth-limited against cycles). A
  // disabled service is not opened inside another: it did not build, often for a cycle.
  function subtree(protocol, name, services, depth, provider) {
    var service = services[qualified(name, provider)];
    if (!service || depth > 6 || (depth > 0 && service.status === "disabled")) {
      return null;
    }
    if (service.weighted || service.highestRandomWeight) {
      var shaped = service.weighted ? service : { name: service.name, weighted: service.highestRandomWeight };
      return weightedTable(protocol, shaped, services, depth);
    }
    if (service.mirroring) {
      return mirroringBlock(service, services, depth);
    }
    if (service.failover) {
      return failoverBlock(service, services, depth);
    }
    return serversList(service);
  }

  function serviceCard(protocol, service, services) {
    var usedBy = service.usedBy || [];
    var own = ownCount(protocol, service.name);
    return el("div", {
      className: "service card-" + service.status,
      "data-service": service.name,
      "data-type": service.type || "",
      "data-status": service.status,
      "data-requests": own.requests
    }, [
      el("h3", {}, [
        service.name + " ",
        el("span", { className: "tag", text: service.type || "" }),
        " ",
        statusTag(service.status),
        el("span", { className: "muted count", text: " " + own.requests + " " + unit(protocol).toLowerCase() })
      ]),
      errorList(service),
      el("p", { className: "muted", text: usedBy.length ? "used by " + usedBy.join(", ") : "used by no router" }),
      subtree(protocol, service.name, services, 0)
    ]);
  }

  // -- filters --------------------------------------------------------------------------

  function matches(item) {
    var status = document.getElementById("status-filter").value;
    if (status && item.status !== status) {
      return false;
    }
    var query = document.getElementById("search").value.trim().toLowerCase();
    if (!query) {
      return true;
    }
    var text = [item.name, item.rule, item.service, item.type, (item.middlewares || []).join(" "),
      (item.entryPoints || []).join(" ")].join(" ").toLowerCase();
    return text.indexOf(query) >= 0;
  }

  // -- pages ----------------------------------------------------------------------------

  function tlsText(tls) {
    if (!tls) {
      return "";
    }
    if (tls.passthrough) {
      return "passthrough";
    }
    return "options: " + (tls.options || "default");
  }

  function routerLink(protocol, router) {
    return el("a", { href: "#/" + protocol + "/routers/" + encodeURIComponent(router.name), text: router.name });
  }

  function routersPage(protocol) {
    var routers = data[protocol].routers.filter(matches);
    var head = ["Router"];
    if (protocol !== "udp") {
      head.push("Rule");
    }
    head.push("Entrypoints");
    if (protocol !== "udp") {
      head.push("Priority", "TLS", "Middlewares");
    }
    head.push("Service", "Status");
    var rows = routers.map(function (router) {
      var cells = [el("td", { className: "name" }, [routerLink(protocol, router)])];
      if (protocol !== "udp") {
        cells.push(el("td", {}, [el("code", { text: router.rule || "" })]));
      }
      cells.push(el("td", { text: (router.using || router.entryPoints || []).join(", ") }));
      if (protocol !== "udp") {
        cells.push(el("td", { className: "num", text: effectivePriority(router) }));
        cells.push(el("td", { text: tlsText(router.tls) }));
        cells.push(el("td", { text: (router.middlewares || []).join(", ") }));
      }
      cells.push(el("td", { text: router.service || "" }));
      cells.push(el("td", {}, [statusTag(router.status), errorList(router)]));
      return el("tr", {
        "data-router": router.name,
        "data-kind": protocol,
        "data-status": router.status,
        "data-service": router.service ? qualified(router.service) : ""
      }, cells);
    });
    if (!rows.length) {
      rows.push(el("tr", { className: "empty" }, [el("td", { colspan: String(head.length), className: "muted", text: "none" })]));
    }
    return [el("table", { className: "routers" }, [
      el("thead", {}, [el("tr", {}, head.map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, rows)
    ])];
  }

  function servicesPage(protocol) {
    var list = data[protocol].services;
    var services = byName(list);
    var shown = list.filter(matches);
    // Services with a tree (weighted, mirroring, failover) first, then load balancers.
    var ordered = shown.filter(function (s) { return !s.loadBalancer; })
      .concat(shown.filter(function (s) { return s.loadBalancer; }));
    var note = protocol === "http"
      ? "Each child counts what its parent sent it, since the proxy started; live share compares with the configured weights."
      : unit(protocol) + " are counted per service since the proxy started.";
    var cards = ordered.map(function (service) { return serviceCard(protocol, service, services); });
    return [
      el("p", { id: "stats-note", className: "muted", text: data.stats.metrics ? note : "Counts need the api or metrics.prometheus in tsproxy.yaml." }),
      el("div", { className: "services" }, cards.length ? cards : [el("p", { className: "muted", text: "none" })])
    ];
  }

  function middlewaresPage(protocol) {
    var list = (data[protocol].middlewares || []).filter(matches);
    var rows = list.map(function (mw) {
      return el("tr", { "data-middleware": mw.name, "data-status": mw.status, "data-type": mw.type || "" }, [
        el("td", { className: "name", text: mw.name }),
        el("td", { text: mw.type || "" }),
        el("td", { text: (mw.usedBy || []).join(", ") }),
        el("td", {}, [statusTag(mw.status), errorList(mw)])
      ]);
    });
    if (!rows.length) {
      rows.push(el("tr", { className: "empty" }, [el("td", { colspan: "4", className: "muted", text: "none" })]));
    }
    return [el("table", { className: "middlewares" }, [
      el("thead", {}, [el("tr", {}, ["Middleware", "Type", "Used by", "Status"].map(function (h) { return el("th", { text: h }); }))]),
      el("tbody", {}, rows)
    ])];
  }

  // A router's path, left to right: entrypoints → middlewares → service → its tree and
  // servers with their health.
  function routerPage(protocol, name) {
    var router = byName(data[protocol].routers)[name];
    if (!router) {
      return [el("p", { className: "muted", text: "no " + protocol.toUpperCase() + " router " + name })];
    }
    var services = byName(data[protocol].services);
    var middlewares = byName(data[protocol].middlewares || []);
    var steps = [];
    (router.using || router.entryPoints || []).forEach(function (ep) {
      steps.push(el("div", { className: "step entrypoint", "data-step": "entrypoint", "data-name": ep }, [
        el("div", { className: "label", text: "entrypoint" }), el("div", { text: ep })
      ]));
    });
    (router.middlewares || []).forEach(function (mwName) {
      var mw = middlewares[qualified(mwName, providerOf(router.name))] || { status: "disabled", type: "?" };
      steps.push(el("div", { className: "step middleware", "data-step": "middleware", "data-name": mwName, "data-status": mw.status }, [
        el("div", { className: "label", text: "middleware " + (mw.type || "") }), el("div", { text: mwName }), statusTag(mw.status)
      ]));
    });
    var service = services[qualified(router.service || "", providerOf(router.name))];
    steps.push(el("div", { className: "step service", "data-step": "service", "data-name": router.service || "" }, [
      el("div", { className: "label", text: "service " + (service ? service.type || "" : "") }),
      el("div", { text: router.service || "" }),
      service ? statusTag(service.status) : null
    ]));
    var arrowed = [];
    steps.forEach(function (step, index) {
      if (index) {
        arrowed.push(el("span", { className: "arrow", text: "→" }));
      }
      arrowed.push(step);
    });
    return [
      el("h2", {}, [router.name + " ", statusTag(router.status)]),
      errorList(router),
      el("dl", { className: "facts" }, [
        el("dt", { text: "Rule" }), el("dd", {}, [el("code", { text: router.rule || "" })]),
        el("dt", { text: "Priority" }), el("dd", { text: effectivePriority(router) }),
        el("dt", { text: "TLS" }), el("dd", { text: tlsText(router.tls) || "no" })
      ]),
      el("div", { className: "chain", "data-router": router.name }, arrowed),
      service ? serviceCard(protocol, service, services) : null
    ];
  }

  function overviewPage() {
    var overview = data.overview;
    var cards = [];
    ["http", "tcp", "udp"].forEach(function (scheme) {
      var section = overview[scheme] || {};
      Object.keys(section).forEach(function (kind) {
        var counts = section[kind];
        var className = "card" + (counts.errors ? " has-errors" : counts.warnings ? " has-warnings" : "");
        cards.push(el("a", {
          className: className,
          href: "#/" + scheme + "/" + kind,
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
    var features = overview.features || {};
    var featureItems = Object.keys(features).map(function (key) {
      var value = features[key];
      var on = value === true || (typeof value === "string" && value !== "");
      return el("li", { "data-feature": key, "data-on": on }, [
        key + ": ", el("span", { className: on ? "on" : "off", text: value === true ? "on" : value || "off" })
      ]);
    });
    var providers = (overview.providers || []).map(function (name) {
      return el("li", { "data-provider": name, text: name });
    });
    var counts = data.stats.entrypoints || {};
    var rows = data.entrypoints.map(function (ep) {
      var transport = ep.transport || {};
      var life = transport.lifeCycle || {};
      var responding = transport.respondingTimeouts || {};
      var seen = counts[ep.name] || { requests: 0, notFound: 0 };
      return el("tr", { "data-entrypoint": ep.name, "data-requests": seen.requests, "data-not-found": seen.notFound }, [
        el("td", { className: "name", text: ep.name }),
        el("td", { text: ep.address }),
        el("td", { className: "num", text: String(seen.requests) }),
        el("td", { className: "num not-found", text: String(seen.notFound) }),
        el("td", { text: life.graceTimeOut || "0s" }),
        el("td", { text: (responding.readTimeout || "0s") + " / " + (responding.idleTimeout || "0s") })
      ]);
    });
    return [
      el("section", { id: "overview" }, [el("h2", { text: "Overview" }), el("div", { id: "overview-cards", className: "cards" }, cards)]),
      el("section", { className: "panels" }, [
        el("div", { className: "panel", id: "features" }, [el("h2", { text: "Features" }), el("ul", {}, featureItems)]),
        el("div", { className: "panel", id: "providers" }, [el("h2", { text: "Providers" }), el("ul", {}, providers)])
      ]),
      el("section", { id: "entrypoints" }, [
        el("h2", { text: "Entrypoints" }),
        el("table", {}, [
          el("thead", {}, [el("tr", {}, ["Name", "Address", "HTTP requests", "Not routed (404)", "Grace time", "Timeouts (read / idle)"].map(function (h) {
            return el("th", { text: h });
          }))]),
          el("tbody", { id: "entrypoints-body" }, rows)
        ])
      ])
    ];
  }

  // -- routing and refresh --------------------------------------------------------------

  function route() {
    var parts = (window.location.hash || "#/").replace(/^#\/?/, "").split("/").map(decodeURIComponent);
    var protocol = parts[0];
    if (["http", "tcp", "udp"].indexOf(protocol) < 0) {
      return { page: "overview" };
    }
    var tab = ["routers", "services", "middlewares"].indexOf(parts[1]) >= 0 ? parts[1] : "routers";
    if (protocol === "udp" && tab === "middlewares") {
      tab = "routers";
    }
    if (tab === "routers" && parts.length > 2 && parts[2]) {
      return { page: "router", protocol: protocol, name: parts.slice(2).join("/") };
    }
    return { page: tab, protocol: protocol };
  }

  function render() {
    if (!data) {
      return;
    }
    var where = route();
    document.body.setAttribute("data-page", where.page);
    document.body.setAttribute("data-protocol", where.protocol || "");
    Array.prototype.forEach.call(document.querySelectorAll("#nav a"), function (a) {
      a.className = a.getAttribute("data-nav") === (where.protocol || "overview") ? "current" : "";
    });
    var tabs = [];
    if (where.protocol) {
      var names = where.protocol === "udp" ? ["routers", "services"] : ["routers", "services", "middlewares"];
      tabs = names.map(function (tab) {
        var current = tab === where.page || (tab === "routers" && where.page === "router");
        return el("a", { href: "#/" + where.protocol + "/" + tab, "data-tab": tab, className: current ? "current" : "",
          text: tab.charAt(0).toUpperCase() + tab.slice(1) });
      });
    }
    replaceChildren(document.getElementById("tabs"), tabs);
    document.getElementById("toolbar").className = "toolbar" + (where.protocol && where.page !== "router" ? "" : " hidden");
    var content;
    if (where.page === "overview") {
      content = overviewPage();
    } else if (where.page === "router") {
      content = routerPage(where.protocol, where.name);
    } else if (where.page === "services") {
      content = servicesPage(where.protocol);
    } else if (where.page === "middlewares") {
      content = middlewaresPage(where.protocol);
    } else {
      content = routersPage(where.protocol);
    }
    replaceChildren(document.getElementById("page"), content);
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
      getAll("/api/http/middlewares"),
      getAll("/api/tcp/routers"),
      getAll("/api/tcp/services"),
      getAll("/api/tcp/middlewares"),
      getAll("/api/udp/routers"),
      getAll("/api/udp/services"),
      getJSON("/api/tsproxy/stats")
    ]).then(function (r) {
      data = {
        overview: r[0].body,
        version: r[1].body,
        entrypoints: r[2],
        http: { routers: r[3], services: r[4], middlewares: r[5] },
        tcp: { routers: r[6], services: r[7], middlewares: r[8] },
        udp: { routers: r[9], services: r[10], middlewares: [] },
        stats: r[11].body
      };
      document.getElementById("version").textContent =
        "tsproxy " + data.version.Version + ", started " + data.version.startDate;
      render();
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

  window.addEventListener("hashchange", render);
  document.getElementById("search").addEventListener("input", render);
  document.getElementById("status-filter").addEventListener("change", render);
  loop();
})();
