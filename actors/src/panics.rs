//! Turning a caught panic into the text that is logged and handed to the product.

use std::any::Any;

/// The message of a panic payload: what `panic!` was given, when it was text.
pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a payload that is not text".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_payloads_are_kept() {
        let payloads: [Box<dyn Any + Send>; 3] = [
            Box::new("static"),
            Box::new(format!("owned {}", 1)),
            Box::new(7_u32),
        ];
        let texts: Vec<String> = payloads
            .iter()
            .map(|payload| panic_text(&**payload))
            .collect();
        assert_eq!(
            texts,
            [
                "static",
                "owned 1",
                "a panic with a payload that is not text"
            ]
        );
    }
}
