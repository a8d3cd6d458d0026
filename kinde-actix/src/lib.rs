//! An actix-web middleware for Kinde webhooks (see the kinde-actix issue; not built yet).
