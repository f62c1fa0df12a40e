//! The frame of every HTML page the project writes (the replay report, the comparison, the
//! dashboard, the sign-in form): one self-contained document with its style inline, so that it
//! opens offline and fetches nothing.

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The look every page shares.
const SHARED_STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330;background:#fafbfc}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:20px 0 0} .sub{color:#5b6475;margin-bottom:16px}
";

/// A whole page: `title`, the shared look followed by the page's own `style`, and `body`.
/// With `refresh_seconds`, the browser reloads the page that often.
///
/// `style` is a constant of the program, written into the page as it is; everything else is
/// escaped.
pub(crate) fn page(
    title: &str,
    style: &'static str,
    refresh_seconds: Option<u32>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(SHARED_STYLE)) (PreEscaped(style)) }
                @if let Some(seconds) = refresh_seconds {
                    meta http-equiv="refresh" content=(seconds);
                }
            }
            body { (body) }
        }
    }
}

/// A coordinate or a length in a drawing, as the pages write it: to a tenth of a unit.
pub(crate) fn tenths(value: f64) -> String {
    format!("{value:.1}")
}
