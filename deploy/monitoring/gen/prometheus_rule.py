# Writes prometheus-rule.yaml: shipper-rules.yml's `groups:` indented under a PrometheusRule's
# `spec:` (text copied as is, so the two stay identical). Run from deploy/monitoring.
lines = open('shipper-rules.yml').read().split('\n')
i = lines.index('groups:')
body = '\n'.join(('  ' + l) if l else l for l in lines[i:])
hdr = '''# The rules of shipper-rules.yml as a PrometheusRule, for the Prometheus Operator:
#   kubectl apply -f deploy/monitoring/prometheus-rule.yaml
# Generated from shipper-rules.yml (its `groups:` indented under `spec:`); the test
# `cargo test -p harness --test monitoring` checks the two carry the same groups and rules.
# Your Prometheus's `ruleSelector` must match the labels below (kube-prometheus-stack selects
# `release: <its release name>` by default: add that label).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: shipper
  namespace: shipper
  labels:
    app.kubernetes.io/name: shipper
    role: alert-rules
spec:
'''
open('prometheus-rule.yaml', 'w').write(hdr + body.rstrip() + '\n')
