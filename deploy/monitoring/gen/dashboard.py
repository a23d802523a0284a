# Writes grafana-dashboard.json. Run from deploy/monitoring: python3 gen/dashboard.py
import json
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'
panels = []
y = 0
def row(title):
    global y
    panels.append({"type": "row", "title": title, "collapsed": False,
                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "id": len(panels) + 1, "panels": []})
    y += 1
def ts(title, desc, targets, unit="short", x=0, w=12, h=8, stack=False, kind="timeseries", max_=None):
    p = {"type": kind, "title": title, "description": desc, "datasource": DS,
         "gridPos": {"h": h, "w": w, "x": x, "y": y}, "id": len(panels) + 1,
         "fieldConfig": {"defaults": {"unit": unit, "min": 0}, "overrides": []},
         "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                     "tooltip": {"mode": "multi", "sort": "desc"}},
         "targets": [{"datasource": DS, "expr": e, "legendFormat": l, "refId": chr(65 + i)}
                     for i, (e, l) in enumerate(targets)]}
    if max_ is not None:
        p["fieldConfig"]["defaults"]["max"] = max_
    if stack:
        p["fieldConfig"]["defaults"]["custom"] = {"stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 20}
    panels.append(p)
    return p
def advance(h=8):
    global y
    y += h

row("Throughput")
ts("Lines read vs events delivered", "Lines read from container log files, events written to the spool and events CloudWatch accepted, per second. Delivered below spooled for long: the spool grows.",
   [(f'sum(rate(shipper_lines_read_total{{{SEL}}}[$__rate_interval]))', "lines read"),
    (f'sum(rate(shipper_events_spooled_total{{{SEL}}}[$__rate_interval]))', "events spooled"),
    (f'sum(rate(shipper_events_delivered_total{{{SEL}}}[$__rate_interval]))', "events delivered")], unit="ops")
ts("Bytes read", "Bytes read from container log files per second, by shipper.",
   [(f'sum by (instance) (rate(shipper_bytes_read_total{{{SEL}}}[$__rate_interval]))', "{{instance}}")], unit="Bps", x=12)
advance()
row("Spool")
ts("Spool bytes (and cap)", "Bytes held in each shipper's durable spool, against its cap (spool_max_bytes). At the cap reading pauses (backpressure).",
   [(f'shipper_spool_bytes{{{SEL}}}', "{{instance}}"),
    (f'max(shipper_spool_max_bytes{{{SEL}}})', "cap")], unit="bytes")
ts("Spool events", "Events waiting in the spool for delivery, by shipper.",
   [(f'shipper_spool_events{{{SEL}}}', "{{instance}}")], x=12)
advance()
row("CloudWatch")
ts("PutLogEvents by outcome", "PutLogEvents calls per second by outcome (ok, throttled, server_error, network, not_found, invalid, credentials, other). Failed calls are retried without limit.",
   [(f'sum by (outcome) (rate(shipper_put_requests_total{{{SEL}}}[$__rate_interval]))', "{{outcome}}")], unit="reqps", stack=True)
ts("Retries", "CloudWatch calls retried per second (any operation), by shipper.",
   [(f'sum by (instance) (rate(shipper_retries_total{{{SEL}}}[$__rate_interval]))', "{{instance}}")], unit="reqps", x=12)
advance()
row("Drops and losses")
ts("Dropped events by reason", "Events dropped (dead-lettered or logged) per interval, by reason: too_old, too_new, expired, invalid, spool_corrupt, empty_message. Should stay at 0. Bytes never read are not events: see the two panels of source losses.",
   [(f'sum by (reason) (increase(shipper_events_dropped_total{{{SEL}}}[$__rate_interval]))', "{{reason}}")], stack=True, w=8)
ts("Lost source files by reason", "Files with bytes that can never be read, per interval, by reason (vanished, truncated, unterminated, unreadable). Should stay at 0.",
   [(f'sum by (reason) (increase(shipper_source_lost_files_total{{{SEL}}}[$__rate_interval]))', "{{reason}}")], stack=True, x=8, w=8)
ts("Lost source bytes by reason", "Bytes known to be lost that way (where the file's size was known), per interval, by reason.",
   [(f'sum by (reason) (increase(shipper_source_lost_bytes_total{{{SEL}}}[$__rate_interval]))', "{{reason}}")], unit="bytes", stack=True, x=16, w=8)
advance()
row("Processing")
ts("Excluded lines by rule", "Lines read and left out on purpose by include/exclude rules or annotations, per second, by deciding rule (not drops).",
   [(f'sum by (rule) (rate(shipper_lines_excluded_total{{{SEL}}}[$__rate_interval]))', "{{rule}}")], unit="ops", stack=True, w=8)
ts("Multiline groups by detector", "Events made of several lines (stack traces) per second, by multiline detector.",
   [(f'sum by (detector) (rate(shipper_multiline_groups_total{{{SEL}}}[$__rate_interval]))', "{{detector}}")], unit="ops", stack=True, x=8, w=8)
ts("Files tailed", "Container log files each shipper follows.",
   [(f'shipper_files_tailed{{{SEL}}}', "{{instance}}")], x=16, w=8)
advance()
row("Health")
ts("Backpressure and paused streams", "backpressure: 1 while the spool is full and reading paused. paused streams: streams holding their share (3/4) of the spool cap, whose files wait.",
   [(f'shipper_backpressure{{{SEL}}}', "backpressure {{instance}}"),
    (f'shipper_streams_paused{{{SEL}}}', "paused streams {{instance}}")], w=12)
ts("Metadata ready", "1 once the shipper has synced its node's pod metadata (/readyz); 0 means lines wait for it, then are routed by file name.",
   [(f'shipper_metadata_ready{{{SEL}}}', "{{instance}}")], x=12, w=12, max_=1)
advance()

dash = {
  "__inputs": [],
  "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
     "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
  "description": "shipper: container logs to CloudWatch Logs through a durable spool. Alerts: deploy/monitoring/shipper-rules.yml.",
  "editable": True,
  "graphTooltip": 1,
  "links": [],
  "panels": panels,
  "refresh": "30s",
  "schemaVersion": 39,
  "tags": ["shipper", "cloudwatch", "logs"],
  "templating": {"list": [
    {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
     "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
    {"name": "instance", "label": "Shipper", "type": "query", "datasource": DS,
     "definition": "label_values(shipper_files_tailed, instance)",
     "query": {"query": "label_values(shipper_files_tailed, instance)", "refId": "instance"},
     "includeAll": True, "multi": True, "allValue": ".*", "current": {}, "hide": 0,
     "refresh": 2, "regex": "", "sort": 1, "options": []}]},
  "time": {"from": "now-6h", "to": "now"},
  "timepicker": {},
  "timezone": "",
  "title": "shipper",
  "uid": "shipper-overview",
  "version": 1,
  "weekStart": ""
}
open('grafana-dashboard.json', 'w').write(json.dumps(dash, indent=2) + '\n')
