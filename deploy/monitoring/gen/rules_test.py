# Writes shipper-rules.test.yml (promtool unit tests): per alert, a firing instance ("bad"),
# healthy instances, an evaluation before `for` elapsed (nothing fires) and one after; expected
# annotations are rendered from the rules file. Needs PyYAML. Run from deploy/monitoring:
#   python3 gen/rules_test.py shipper-rules.yml shipper-rules.test.yml
import re, sys, yaml
rules = yaml.safe_load(open(sys.argv[1]))
by_name = {r['alert']: r for g in rules['groups'] for r in g['rules']}
GIB = 1073741824
MIB = 1048576

def render(text, labels):
    return re.sub(r'\{\{ \$labels\.(\w+) \}\}', lambda m: labels.get(m.group(1), ''), text)

def alert(name, labels, summary):
    r = by_name[name]
    full = dict(labels); full['severity'] = r['labels']['severity']
    ann = {k: render(v, full) for k, v in r['annotations'].items()}
    ann['summary'] = summary
    return {'exp_labels': full, 'exp_annotations': ann}

def s(metric, inst, values, **extra):
    labels = {'instance': inst, 'job': 'shipper', **extra}
    lab = ','.join(f'{k}="{v}"' for k, v in labels.items())
    return {'series': f'{metric}{{{lab}}}', 'values': values}

def L(inst, **extra):
    return {'instance': inst, 'job': 'shipper', **extra}

tests = []
def case(comment, series, name, checks):
    tests.append({'interval': '1m', 'input_series': series,
                  'alert_rule_test': [{'eval_time': t, 'alertname': name, 'exp_alerts': exp} for t, exp in checks],
                  '_comment': comment})

case('ShipperNoDelivery: "bad" spools 100 events/min and delivers none; "ok" delivers them; "idle" reads nothing.',
     [s('shipper_events_spooled_total', 'bad', '0+100x40'), s('shipper_events_delivered_total', 'bad', '0x40'),
      s('shipper_events_spooled_total', 'ok', '0+100x40'), s('shipper_events_delivered_total', 'ok', '0+100x40'),
      s('shipper_events_spooled_total', 'idle', '0x40'), s('shipper_events_delivered_total', 'idle', '0x40')],
     'ShipperNoDelivery',
     [('5m', []),
      ('20m', [alert('ShipperNoDelivery', L('bad'), 'Shipper bad reads logs but delivers nothing to CloudWatch')])])

case('ShipperSpoolNotDraining: "bad" holds 500 events and delivers none; "ok" holds 500 but delivers; "empty" has nothing to send.',
     [s('shipper_spool_events', 'bad', '500x60'), s('shipper_events_delivered_total', 'bad', '1000x60'),
      s('shipper_spool_events', 'ok', '500x60'), s('shipper_events_delivered_total', 'ok', '1000+10x60'),
      s('shipper_spool_events', 'empty', '0x60'), s('shipper_events_delivered_total', 'empty', '1000x60')],
     'ShipperSpoolNotDraining',
     [('10m', []),
      ('40m', [alert('ShipperSpoolNotDraining', L('bad'), 'Shipper bad holds 500 spooled events and delivers none')])])

case('ShipperStreamsPaused: "bad" has a stream paused for 30 minutes; "brief" pauses for 5 minutes only; "ok" none.',
     [s('shipper_streams_paused', 'bad', '1x30'), s('shipper_streams_paused', 'brief', '0x10 1x5 0x15'),
      s('shipper_streams_paused', 'ok', '0x30')],
     'ShipperStreamsPaused',
     [('10m', []),
      ('25m', [alert('ShipperStreamsPaused', L('bad'), 'Shipper bad: 1 stream(s) paused for 15 minutes')])])

case('ShipperBackpressure: "bad" is paused for 20 minutes; "ok" never.',
     [s('shipper_backpressure', 'bad', '1x20'), s('shipper_backpressure', 'ok', '0x20')],
     'ShipperBackpressure',
     [('3m', []),
      ('10m', [alert('ShipperBackpressure', L('bad'), 'Shipper bad: spool full, reading paused')])])

case('ShipperSpoolFillingUp: cap 1 GiB; "bad" grows 5 MiB/min (full in < 4 h); "slow" grows 1 MiB/min (> 4 h); "stable" holds 900 MiB without growing.',
     [s('shipper_spool_max_bytes', 'bad', f'{GIB}x90'), s('shipper_spool_bytes', 'bad', f'0+{5*MIB}x90'),
      s('shipper_spool_max_bytes', 'slow', f'{GIB}x90'), s('shipper_spool_bytes', 'slow', f'0+{MIB}x90'),
      s('shipper_spool_max_bytes', 'stable', f'{GIB}x90'), s('shipper_spool_bytes', 'stable', f'{900*MIB}x90')],
     'ShipperSpoolFillingUp',
     [('10m', []),
      ('60m', [alert('ShipperSpoolFillingUp', L('bad'), 'Shipper bad: spool will be full within 4 hours')])])

case('ShipperEventsDropped: "bad" drops 5 events too_old at 5m; invalid stays 0; the alert clears 10 minutes later.',
     [s('shipper_events_dropped_total', 'bad', '0x4 5x30', reason='too_old'),
      s('shipper_events_dropped_total', 'bad', '0x34', reason='invalid'),
      s('shipper_events_dropped_total', 'ok', '0x34', reason='too_old')],
     'ShipperEventsDropped',
     [('3m', []),
      ('10m', [alert('ShipperEventsDropped', L('bad', reason='too_old'), 'Shipper bad dropped 5 events in 10 minutes (too_old)')]),
      ('30m', [])])

case('ShipperSourceLost: "bad" loses 2 files (vanished) at 5m; truncated stays 0.',
     [s('shipper_source_lost_files_total', 'bad', '0x4 2x30', reason='vanished'),
      s('shipper_source_lost_files_total', 'bad', '0x34', reason='truncated'),
      s('shipper_source_lost_files_total', 'ok', '0x34', reason='vanished')],
     'ShipperSourceLost',
     [('3m', []),
      ('10m', [alert('ShipperSourceLost', L('bad', reason='vanished'), 'Shipper bad lost content of 2 log file(s) in 10 minutes (vanished)')]),
      ('30m', [])])

case('ShipperPutLogEventsFailing: "bad": 1 ok and 3 throttled calls per minute; "ok": 10 ok and 1 not_found per minute (under a quarter).',
     [s('shipper_put_requests_total', 'bad', '0+1x40', outcome='ok'),
      s('shipper_put_requests_total', 'bad', '0+3x40', outcome='throttled'),
      s('shipper_put_requests_total', 'bad', '0x40', outcome='network'),
      s('shipper_put_requests_total', 'ok', '0+10x40', outcome='ok'),
      s('shipper_put_requests_total', 'ok', '0+1x40', outcome='not_found'),
      s('shipper_put_requests_total', 'ok', '0x40', outcome='throttled')],
     'ShipperPutLogEventsFailing',
     [('5m', []),
      ('20m', [alert('ShipperPutLogEventsFailing', L('bad', outcome='throttled'), 'Shipper bad: 75% of PutLogEvents calls fail with throttled')])])

case('ShipperMetadataNotReady: "bad" never syncs; "late" syncs after 5 minutes; "ok" is ready.',
     [s('shipper_metadata_ready', 'bad', '0x30'), s('shipper_metadata_ready', 'late', '0x5 1x25'),
      s('shipper_metadata_ready', 'ok', '1x30')],
     'ShipperMetadataNotReady',
     [('5m', []),
      ('20m', [alert('ShipperMetadataNotReady', L('bad'), 'Shipper bad: pod metadata not synced')])])

def ksm(pod, values):
    lab = f'namespace="shipper",pod="{pod}",container="shipper",job="kube-state-metrics"'
    return {'series': f'kube_pod_container_status_restarts_total{{{lab}}}', 'values': values}
case('ShipperRestarting (kube-state-metrics): "shipper-bad" restarts every 10 minutes; "shipper-once" restarted once.',
     [ksm('shipper-bad', '0 0 0 0 0 0 0 0 0 0 1x9 2x9 3x9 4x9 5x9 6x9'), ksm('shipper-once', '0x9 1x60')],
     'ShipperRestarting',
     [('15m', []),
      ('60m', [alert('ShipperRestarting',
                     {'namespace': 'shipper', 'pod': 'shipper-bad', 'container': 'shipper', 'job': 'kube-state-metrics'},
                     'Shipper pod shipper-bad restarted more than twice in an hour')])])

out = ['# Unit tests for shipper-rules.yml: `promtool test rules shipper-rules.test.yml`.',
       '# Each alert fires on a synthetic "bad" series, and not on healthy ones, nor before its',
       '# `for` has elapsed. Run by `cargo test -p harness --test monitoring`.',
       'rule_files:', '  - shipper-rules.yml', 'evaluation_interval: 1m', 'tests:']
for t in tests:
    comment = t.pop('_comment')
    body = yaml.safe_dump([t], sort_keys=False, width=100, default_flow_style=False)
    out.append('  # ' + comment)
    out.extend('  ' + line for line in body.rstrip('\n').split('\n'))
open(sys.argv[2], 'w').write('\n'.join(out) + '\n')
