"""The operations scorecard (运营评价, scorecard.md): every city scored monthly against an
evaluation scheme, from the published marts and evaluators' assessments, with printable reports."""
