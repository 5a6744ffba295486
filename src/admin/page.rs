//! `/`: the status page, one self-contained HTML file (`status.html`: inline style and script,
//! nothing from elsewhere) that shows the `/status` document and fetches it again every few
//! seconds. The document it is served with is embedded, so the page shows the gateway's state
//! before any script runs a fetch.

const PAGE: &str = include_str!("status.html");
const SLOT: &str = "/*STATUS*/null";

/// The page with `status` (the `/status` JSON) embedded.
pub fn render(status: &str) -> String {
    // Inside <script>: no `<` at all, so no `</script>` or `<!--` can end or bend it.
    let safe = status.replace('<', "\\u003c");
    PAGE.replacen(SLOT, &safe, 1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_embedded_and_cannot_close_the_script() {
        assert!(super::PAGE.contains(super::SLOT));
        let page = super::render(r#"{"gateway":"</script><b>x"}"#);
        assert!(page.contains(r#"{"gateway":"\u003c/script>\u003cb>x"}"#));
        assert_eq!(page.matches("</script>").count(), 1, "only the page's own");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing from elsewhere"
        );
    }
}
