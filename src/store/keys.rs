//! OWNER: store helper.
