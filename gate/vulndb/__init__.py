"""An offline Trivy vulnerability DB (v2), built from OSV advisories (`build`), and its
freshness check (`freshness`, import-light: the scan path loads it before Trivy starts)."""
