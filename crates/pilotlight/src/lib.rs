//! pilotlight
