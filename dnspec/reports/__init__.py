"""Reports: what a verify run found, as records, and the writers that show it (text, markdown, JSON, JUnit, HTML, CI annotations, pictures, the conformance table)."""
