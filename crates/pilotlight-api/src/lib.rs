//! pilotlight-api
