"""The HTML report's Jinja2 template. Rendered with autoescape on: every captured value (paths,
endpoints, header values, bodies, request ids) is escaped; nothing is marked safe. The page holds
no script and forbids any by its Content-Security-Policy, and fetches nothing (``default-src
'none'``): plots are inline SVG, styles inline."""

from __future__ import annotations

HTML = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="shadowdiff {{ doc.run.tool_version }}">
<title>shadowdiff report: {{ doc.run.dir }}</title>
<style>
:root { --fg: #1d2430; --muted: #5d6778; --line: #d9dee7; --bg: #fff; --band: #f5f7fa;
        --bad: #b42318; --bad-bg: #fde8e6; --noise: #8a6d00; --noise-bg: #fff6d6;
        --soft-bg: #eef2f8; --primary: #2b6cb0; --mirror: #d9480f; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: var(--bg); margin: 0; }
header { background: #1d2430; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 20px; font-weight: 600; }
header .sub { color: #c4cbd6; font-size: 13px; }
nav { padding: 8px 28px; background: var(--band); border-bottom: 1px solid var(--line);
      font-size: 13px; }
nav a { color: var(--primary); margin-right: 14px; text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1400px; }
h2 { font-size: 17px; margin: 28px 0 10px; padding-bottom: 4px;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; min-width: 150px;
        background: var(--band); }
.card .v { font-size: 22px; font-weight: 600; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
.card.bad .v { color: var(--bad); }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px 4px 0; text-align: left;
         vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; padding-left: 10px;
             white-space: nowrap; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono",
              monospace; font-size: 12px; }
.muted { color: var(--muted); }
.bar { display: inline-block; height: 8px; background: var(--bad); border-radius: 2px;
       vertical-align: middle; }
.barbox { display: inline-block; width: 120px; background: var(--soft-bg); border-radius: 2px;
          margin-left: 6px; }
.tag { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11px;
       background: var(--soft-bg); }
.tag.bad { background: var(--bad-bg); color: var(--bad); }
.tag.noise { background: var(--noise-bg); color: var(--noise); }
.wide { overflow-x: auto; }
td.ep { white-space: nowrap; }
.plots { display: flex; flex-wrap: wrap; gap: 18px; }
.plot { border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.plot .title { font-size: 12px; font-weight: 600; margin-bottom: 2px; max-width: 360px;
               overflow-wrap: anywhere; }
.legend { font-size: 11px; color: var(--muted); }
.legend .p { color: var(--primary); font-weight: 600; }
.legend .m { color: var(--mirror); font-weight: 600; }
svg text { font: 10px system-ui, sans-serif; fill: var(--muted); }
.sbs { width: 100%; table-layout: fixed; }
.sbs td { white-space: pre-wrap; overflow-wrap: anywhere; font-family: ui-monospace, Menlo,
          Consolas, "DejaVu Sans Mono", monospace; font-size: 12px; padding-right: 8px; }
.sbs col.label { width: 24%; }
.sbs tr.diff td { background: var(--bad-bg); }
.sbs tr.diff td:first-child { box-shadow: inset 3px 0 0 var(--bad); }
.sbs tr.noise td { background: var(--noise-bg); }
.sbs tr.differs td { background: var(--soft-bg); }
.absent { color: var(--muted); font-style: italic; }
.example { border: 1px solid var(--line); border-radius: 6px; padding: 4px 14px 10px;
           margin: 14px 0; }
details > summary { cursor: pointer; color: var(--primary); }
.good { color: #1a7f37; }
.worse { color: var(--bad); font-weight: 600; }
</style>
</head>
<body>
{% macro row(r) -%}
<tr class="{{ r.mark }}"><td>{{ r.label }}
{%- if r.reason %} <span class="tag noise">{{ r.reason }}</span>{% endif %}</td>
<td>{% if r.primary is none %}<span class="absent">absent</span>
{%- else %}{{ r.primary }}{% endif %}</td>
<td>{% if r.mirror is none %}<span class="absent">absent</span>
{%- else %}{{ r.mirror }}{% endif %}</td></tr>
{%- endmacro %}
{% set run = doc.run %}
<header>
  <h1>shadowdiff report</h1>
  <div class="sub">run <span class="mono">{{ run.dir }}</span> · shadowdiff {{ run.tool_version }}
  · schema {{ run.schema_version }} · generated {{ generated }}</div>
</header>
<nav>
  <a href="#summary">Summary</a>
  {% if doc.baseline %}<a href="#baseline">Baseline</a>{% endif %}
  <a href="#endpoints">Endpoints</a>
  <a href="#patterns">Patterns</a>
  <a href="#signatures">Signatures</a>
  <a href="#noise">Noise</a>
  <a href="#latency">Latency</a>
  <a href="#examples">Examples</a>
</nav>
<main>
<section id="summary">
<h2>Run summary</h2>
<div class="cards">
  <div class="card"><div class="k">pairs</div><div class="v">{{ run.pairs | num }}</div>
    <div class="muted">{{ run.paired | num }} answered by both sides</div></div>
  <div class="card {{ 'bad' if run.outcomes.diverged else '' }}"><div class="k">diverged</div>
    <div class="v">{{ run.outcomes.diverged | num }}</div>
    <div class="muted">{{ run.divergence_rate | pct }} of paired</div></div>
  <div class="card"><div class="k">noise only</div>
    <div class="v">{{ run.outcomes.noise_only | num }}</div>
    <div class="muted">match: {{ run.outcomes.match | num }}</div></div>
  <div class="card {{ 'bad' if doc.pairing.orphan_rate else '' }}"><div class="k">orphans</div>
    {% set orphans = doc.pairing.orphans.primary_only + doc.pairing.orphans.mirror_only %}
    <div class="v">{{ orphans | num }}</div>
    <div class="muted">{{ doc.pairing.orphan_rate | pct }} of request ids</div></div>
  <div class="card {{ 'bad' if doc.pairing.rejects else '' }}"><div class="k">rejects</div>
    <div class="v">{{ doc.pairing.rejects | num }}</div>
    <div class="muted">{{ doc.pairing.reject_rate | pct }} of records</div></div>
  <div class="card"><div class="k">window</div>
    <div class="v">{{ run.window.seconds | duration }}</div>
    <div class="muted mono">{{ run.window.start or "—" }}<br>{{ run.window.end or "—" }}</div></div>
</div>
<table>
  <tr><th>outcome</th><th class="n">pairs</th><th class="n">share</th></tr>
  {% for name, count in run.outcomes.items() %}
  <tr><td>{{ name }}</td><td class="n">{{ count | num }}</td>
      <td class="n">{{ (count / run.pairs if run.pairs else None) | pct }}</td></tr>
  {% endfor %}
</table>
{% if run.notes %}<p class="muted">{{ run.notes | num }} pair(s) could not be compared in full
(see <code>pairs.note</code>).</p>{% endif %}

<h3>Inputs</h3>
<table>
  <tr><th>side</th><th>source</th><th>path</th><th class="n">files</th><th class="n">size</th>
      <th class="n">records</th><th class="n">rejected</th><th>sha256</th></tr>
  {% for i in run.input_groups %}
  <tr><td>{{ i.side or "from rules" }}</td><td>{{ i.source }}</td><td class="mono">{{ i.path }}</td>
      <td class="n">{{ i.files | num }}</td>
      <td class="n">{{ i.size | num }}</td><td class="n">{{ i.records | num }}</td>
      <td class="n">{{ i.rejected | num }}</td>
      <td class="mono muted">{{ (i.sha256 or "")[:16] }}</td></tr>
  {% endfor %}
</table>

<h3>Pairing quality</h3>
<table>
  <tr><th>side</th><th class="n">read</th><th class="n">paired</th><th class="n">orphaned</th>
      <th class="n">duplicates</th><th class="n">rejected</th></tr>
  {% for side, f in doc.pairing.conservation.items() %}
  <tr><td>{{ side }}</td><td class="n">{{ f.read | num }}</td>
      <td class="n">{{ f.paired | num }}</td>
      <td class="n">{{ f.orphaned | num }}</td><td class="n">{{ f.duplicates | num }}</td>
      <td class="n">{{ f.rejected | num }}</td></tr>
  {% endfor %}
</table>
<p class="muted">Per side, records read = paired + orphaned + duplicates + rejected.
Orphans: {{ doc.pairing.orphans.primary_only | num }} primary only,
{{ doc.pairing.orphans.mirror_only | num }} mirror only.</p>
{% if doc.pairing.mirroring_lines %}
<ul class="mirroring">
  {% for line in doc.pairing.mirroring_lines %}<li>{{ line }}</li>{% endfor %}
</ul>
{% endif %}
{% if doc.pairing.reject_reasons %}
<table>
  <tr><th class="n">rejects</th><th>reason</th></tr>
  {% for r in doc.pairing.reject_reasons %}
  <tr><td class="n">{{ r.count | num }}</td><td>{{ r.reason }}</td></tr>
  {% endfor %}
</table>
{% endif %}
</section>

{% if doc.baseline %}
{% set b = doc.baseline %}
<section id="baseline">
<h2>Compared with the baseline run</h2>
<p>Baseline: <span class="mono">{{ b.dir }}</span>
{% if b.started_at %}(started {{ b.started_at }}){% endif %}</p>
<h3>New patterns ({{ b.new_patterns | length }})</h3>
{% if b.new_patterns %}
<table>
  <tr><th>endpoint</th><th>part</th><th>pattern</th><th>kind</th><th class="n">pairs</th>
      <th>example request ids</th></tr>
  {% for p in b.new_patterns %}
  <tr><td>{{ p.endpoint | endpoint }}</td><td>{{ p.part }}</td><td class="mono">{{ p.pattern }}</td>
      <td><span class="tag bad">{{ p.kind }}</span></td><td class="n">{{ p.pairs | num }}</td>
      <td class="mono">{{ p.example_request_ids | join(", ") }}</td></tr>
  {% endfor %}
</table>
{% else %}<p class="muted">None: every difference of this run was already in the baseline.</p>
{% endif %}
<h3>Patterns that went away ({{ b.gone_patterns | length }})</h3>
{% if b.gone_patterns %}
<table>
  <tr><th>endpoint</th><th>part</th><th>pattern</th><th>kind</th>
      <th class="n">pairs in baseline</th></tr>
  {% for p in b.gone_patterns %}
  <tr><td>{{ p.endpoint | endpoint }}</td><td>{{ p.part }}</td><td class="mono">{{ p.pattern }}</td>
      <td>{{ p.kind }}</td><td class="n">{{ p.pairs | num }}</td></tr>
  {% endfor %}
</table>
{% else %}<p class="muted">None.</p>{% endif %}
<h3>Endpoints: divergence and latency against the baseline</h3>
<table>
  <tr><th>endpoint</th><th class="n">pairs</th><th class="n">divergence</th>
      <th class="n">baseline</th><th class="n">change</th>
      {% for q in quantiles %}
      <th class="n">{{ q }} ratio</th><th class="n">baseline</th>
      {% endfor %}
  </tr>
  {% for e in b.endpoints %}
  <tr><td>{{ e.endpoint | endpoint }}{% if e.presence != "both" %}
        <span class="tag">{{ e.presence }}</span>{% endif %}</td>
      <td class="n">{{ e.pairs | num }}</td>
      <td class="n">{{ e.divergence_rate | pct }}</td>
      <td class="n">{{ e.baseline_divergence_rate | pct }}</td>
      <td class="n {{ e.divergence_rate_change | trend }}">
        {{- e.divergence_rate_change | pct_change }}</td>
      {% for q in quantiles %}{% set l = e.latency[q] %}
      <td class="n {{ l.ratio_change | trend }}">{{ l.ratio | times }}</td>
      <td class="n muted">{{ l.baseline_ratio | times }}</td>
      {% endfor %}
  </tr>
  {% endfor %}
</table>
</section>
{% endif %}

<section id="endpoints">
<h2>Endpoints, by divergence rate</h2>
<table>
  <tr><th>endpoint</th><th class="n">pairs</th><th class="n">paired</th><th class="n">diverged</th>
      <th class="n">rate</th><th></th><th class="n">noise only</th><th class="n">status</th>
      <th class="n">headers</th><th class="n">body</th><th class="n">primary only</th>
      <th class="n">mirror only</th></tr>
  {% for e in doc.endpoints %}
  <tr><td class="mono ep">{{ e.endpoint | endpoint }}</td><td class="n">{{ e.pairs | num }}</td>
      <td class="n">{{ e.paired | num }}</td><td class="n">{{ e.diverged | num }}</td>
      <td class="n">{{ e.divergence_rate | pct }}</td>
      <td><span class="barbox"><span class="bar"
          style="width: {{ ((e.divergence_rate or 0) * 100) | round(1) }}%"></span></span></td>
      <td class="n">{{ e.noise_only | num }}</td><td class="n">{{ e.status_diverged | num }}</td>
      <td class="n">{{ e.headers_diverged | num }}</td>
      <td class="n">{{ e.body_diverged | num }}</td>
      <td class="n">{{ e.primary_only | num }}</td><td class="n">{{ e.mirror_only | num }}</td></tr>
  {% endfor %}
</table>
</section>

<section id="patterns">
<h2>Top difference patterns per endpoint</h2>
{% set with_patterns = doc.endpoints | selectattr("patterns") | list %}
{% if not with_patterns %}<p class="muted">No real (non-noise) differences.</p>{% endif %}
{% for e in with_patterns %}
<h3 class="mono">{{ e.endpoint | endpoint }}</h3>
<table>
  <tr><th>part</th><th>pattern</th><th>kind</th><th class="n">pairs</th><th class="n">diffs</th>
      <th>example: primary → mirror</th><th>example request ids</th></tr>
  {% for p in e.patterns %}
  <tr><td>{{ p.part }}</td><td class="mono">{{ p.pattern }}</td>
      <td><span class="tag bad">{{ p.kind }}</span></td>
      <td class="n">{{ p.pairs | num }}</td><td class="n">{{ p.diffs | num }}</td>
      <td class="mono">{{ p.example.primary_value | value }} →
        {{ p.example.mirror_value | value }}</td>
      <td class="mono">{{ p.example_request_ids | join(", ") }}</td></tr>
  {% endfor %}
</table>
{% endfor %}
</section>

<section id="signatures">
<h2>Top failure signatures</h2>
<p class="muted">Pairs that differ in the same set of patterns share a signature, whatever their
ids or values.</p>
{% if doc.signatures %}
<table>
  <tr><th>signature</th><th class="n">pairs</th><th>patterns</th><th>endpoints</th>
      <th>example request ids</th></tr>
  {% for s in doc.signatures %}
  <tr><td class="mono">{{ s.signature }}</td><td class="n">{{ s.pairs | num }}</td>
      <td class="mono">{% for p in s.patterns %}<div>{{ p }}</div>{% endfor %}</td>
      <td class="mono">{% for x in s.endpoints %}<div>{{ x | endpoint }}</div>{% endfor %}</td>
      <td class="mono">{{ s.example_request_ids | join(", ") }}</td></tr>
  {% endfor %}
</table>
{% else %}<p class="muted">No diverged pairs.</p>{% endif %}
</section>

<section id="noise">
<h2>Noise</h2>
<p>{{ doc.noise.diffs | num }} difference(s) were judged noise;
{{ doc.noise.pairs_noise_only | num }} pair(s) differ only in noise.</p>
{% if doc.noise.reasons %}
<table>
  <tr><th>endpoint</th><th>part</th><th>pattern</th><th>kind</th><th>why it is noise</th>
      <th class="n">pairs</th><th class="n">diffs</th></tr>
  {% for r in doc.noise.reasons %}
  <tr><td class="mono">{{ r.endpoint | endpoint }}</td><td>{{ r.part }}</td>
      <td class="mono">{{ r.pattern }}</td><td><span class="tag noise">{{ r.kind }}</span></td>
      <td>{{ r.reason or "—" }}</td><td class="n">{{ r.pairs | num }}</td>
      <td class="n">{{ r.diffs | num }}</td></tr>
  {% endfor %}
</table>
{% endif %}
{% if doc.noise.verdicts %}
<h3>Noise verdicts (per pattern: against the secondary side, or from the values)</h3>
<table>
  <tr><th>endpoint</th><th>pattern</th><th>kind</th><th class="n">raw</th>
      <th class="n">baseline</th><th class="n">total</th><th class="n">p</th><th>verdict</th>
      <th>evidence</th></tr>
  {% for v in doc.noise.verdicts %}
  <tr><td class="mono">{{ v.endpoint | endpoint }}</td><td class="mono">{{ v.pattern }}</td>
      <td>{{ v.kind }}</td><td class="n">{{ v.raw_count | num }}</td>
      <td class="n">{{ v.baseline_count | num }}</td><td class="n">{{ v.total | num }}</td>
      <td class="n">{{ v.p_value | pvalue }}</td><td>{{ v.verdict }}</td>
      <td>{{ v.evidence }}</td></tr>
  {% endfor %}
</table>
{% endif %}
</section>

<section id="latency">
<h2>Latency per endpoint (paired requests)</h2>
<p class="muted">Quantiles in ms (primary → mirror) over the requests both sides answered.
Ratio: mirror / primary, with its {{ confidence }} bootstrap confidence interval
(pairs resampled, seeded); quantiles under {{ floor }} ms count as {{ floor }} ms in
ratios. Δ: median of the paired differences mirror − primary. p: Mann-Whitney U,
two-sided. Fewer than {{ min_pairs }} pairs, or too few beyond a tail quantile
(p90: {{ tail.p90 }}, p99: {{ tail.p99 }}): insufficient data.</p>
<div class="wide">
<table>
  <tr><th>endpoint</th><th class="n">pairs</th>
      {% for q in quantiles %}<th class="n">{{ q }} ms</th>{% endfor %}
      {% for q in quantiles %}<th class="n">{{ q }} ratio [CI]</th>{% endfor %}
      <th class="n">Δ p50</th><th class="n">p</th></tr>
  {% for l in doc.latency %}
  <tr><td class="mono ep">{{ l.endpoint | endpoint }}</td><td class="n">{{ l.pairs | num }}</td>
      {% for q in quantiles %}
      <td class="n">{{ l.primary[q] | ms }} → {{ l.mirror[q] | ms }}</td>
      {% endfor %}
      {% if l.sufficient %}
        {% for q in quantiles %}{% set r = l.ratio[q] %}
        <td class="n">{% if r.estimate is not none %}
          <span class="{{ 'worse' if r.low > 1 else '' }}">{{ r.estimate | times }}</span>
          <span class="muted">[{{ r.low | fixed }}–{{ r.high | fixed }}]</span>
        {%- else %}<span class="muted">insufficient data</span>{% endif %}</td>
        {% endfor %}
        <td class="n">{{ l.delta_ms.p50 | ms_signed }}</td>
        <td class="n">{{ l.mann_whitney_p | pvalue }}</td>
      {% else %}
        <td class="muted" colspan="{{ quantiles | length + 2 }}">{{ l.note }}</td>
      {% endif %}
  </tr>
  {% endfor %}
</table>
</div>
<div class="plots">
{% for l in doc.latency %}{% set plot = plots.get(l.endpoint) %}{% if plot %}
<div class="plot">
  <div class="title mono">{{ l.endpoint | endpoint }}</div>
  <div class="legend"><span class="p">━ primary</span> <span class="m">━ mirror</span>
    · {{ l.pairs | num }} pairs
    {%- if plot.clipped %} · axis ends at {{ plot.x_max_ms | ms }} ms{% endif %}</div>
  <svg width="{{ plot.width }}" height="{{ plot.height }}"
       viewBox="0 0 {{ plot.width }} {{ plot.height }}"
       role="img" aria-label="latency CDF, primary and mirror">
    <rect x="{{ plot.left }}" y="{{ plot.top }}" width="{{ plot.plot_width }}"
          height="{{ plot.plot_height }}" fill="#fafbfc" stroke="#d9dee7"/>
    {% for t in plot.y_ticks %}
    <line x1="{{ plot.left }}" x2="{{ plot.left + plot.plot_width }}" y1="{{ t.position }}"
          y2="{{ t.position }}" stroke="#eceff4"/>
    <text x="{{ plot.left - 6 }}" y="{{ t.position + 3 }}" text-anchor="end">{{ t.label }}</text>
    {% endfor %}
    {% for t in plot.x_ticks %}
    <line x1="{{ t.position }}" x2="{{ t.position }}" y1="{{ plot.top + plot.plot_height }}"
          y2="{{ plot.top + plot.plot_height + 4 }}" stroke="#9aa3b2"/>
    <text x="{{ t.position }}" y="{{ plot.top + plot.plot_height + 15 }}"
          text-anchor="middle">{{ t.label }}</text>
    {% endfor %}
    <text x="{{ plot.left + plot.plot_width / 2 }}" y="{{ plot.height - 4 }}"
          text-anchor="middle">ms</text>
    <polyline points="{{ plot.primary }}" fill="none" stroke="#2b6cb0" stroke-width="1.8"/>
    <polyline points="{{ plot.mirror }}" fill="none" stroke="#d9480f" stroke-width="1.8"
              stroke-dasharray="5 2"/>
  </svg>
</div>
{% endif %}{% endfor %}
</div>
</section>

<section id="examples">
<h2>Example diverged pairs</h2>
{% if not views %}<p class="muted">No diverged pairs.</p>{% endif %}
{% for ex, view in views %}
<div class="example">
<h3><span class="mono">{{ ex.method }} {{ ex.path }}</span></h3>
<p class="muted">request id <span class="mono">{{ ex.request_id }}</span> · endpoint
<span class="mono">{{ ex.endpoint | endpoint }}</span>{% if ex.signature %} · signature
<span class="mono">{{ ex.signature }}</span>{% endif %}</p>
<p>{% for d in ex.diffs %}<span class="tag {{ 'noise' if d.noise else 'bad' }}">{{ d.part }}
{{ d.path }} {{ d.kind }}{% if d.noise %} (noise
{%- if d.noise_reason %}: {{ d.noise_reason }}{% endif %}){% endif %}</span>
{% endfor %}</p>
{% if ex.note %}<p class="muted">Note: {{ ex.note }}</p>{% endif %}
{% for note in view.notes %}<p class="muted">Note: {{ note }}</p>{% endfor %}
<table class="sbs">
  <colgroup><col class="label"><col><col></colgroup>
  <tr><th></th><th>primary</th><th>mirror</th></tr>
  {% for r in view.status %}{{ row(r) }}{% endfor %}
</table>
<details{% if view.headers | selectattr("mark", "equalto", "diff") | list %} open{% endif %}>
<summary>response headers ({{ view.headers | length }})</summary>
<table class="sbs">
  <colgroup><col class="label"><col><col></colgroup>
  {% for r in view.headers %}{{ row(r) }}{% endfor %}
  {% if not view.headers %}<tr><td colspan="3" class="absent">not captured</td></tr>{% endif %}
</table>
</details>
<details open>
<summary>response body ({{ view.body_kind }}) · primary: {{ view.primary_body }}
· mirror: {{ view.mirror_body }}</summary>
<table class="sbs">
  <colgroup><col class="label"><col><col></colgroup>
  {% for r in view.body %}{{ row(r) }}{% endfor %}
</table>
</details>
</div>
{% endfor %}
</section>
</main>
</body>
</html>
"""
