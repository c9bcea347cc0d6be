//! The closed sets of states and kinds the store persists, as Rust enums stored in `TEXT`
//! columns as their snake_case names (the same text in JSON through serde). Each enum converts
//! to and from that text with `as_str`/[`FromStr`], and encodes/decodes directly in queries on
//! both back-ends. Open-ended kinds (mapped resource kinds, step kinds) stay `String`.

use std::fmt;
use std::str::FromStr;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

/// A text that names no variant of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {type_name}")]
pub struct UnknownValue {
    /// The Rust enum, e.g. `"CopyState"`.
    pub type_name: &'static str,
    /// The rejected text.
    pub value: String,
}

macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The text stored in the database and used in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        type_name: stringify!($name),
                        value: s.to_owned(),
                    }),
                }
            }
        }

        impl<DB: Database> Type<DB> for $name
        where
            str: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $name
        where
            &'static str: Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer,
            ) -> Result<IsNull, BoxDynError> {
                <&'static str as Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $name
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&'r str as Decode<'r, DB>>::decode(value)?;
                Ok(text.parse::<$name>()?)
            }
        }
    };
}

text_enum! {
    /// Whether a mapped primary resource still exists (R1: deletions are reported, not
    /// mirrored, unless pruning is on).
    pub enum MappingStatus {
        /// The primary resource exists and its DR counterpart is maintained.
        Active => "active",
        /// The primary resource is gone; the DR counterpart is kept and reported.
        Orphaned => "orphaned",
    }
}

text_enum! {
    /// What a cross-region copy copies (R2–R4).
    pub enum CopyKind {
        /// EBS snapshot (`CopySnapshot`).
        EbsSnapshot => "ebs_snapshot",
        /// RDS DB snapshot (`CopyDBSnapshot`).
        RdsSnapshot => "rds_snapshot",
        /// Aurora cluster snapshot (`CopyDBClusterSnapshot`).
        RdsClusterSnapshot => "rds_cluster_snapshot",
        /// AMI (`CopyImage`).
        Ami => "ami",
    }
}

text_enum! {
    /// Life cycle of one copy.
    pub enum CopyState {
        /// Known, not yet requested.
        Queued => "queued",
        /// Requested from AWS, not finished.
        InFlight => "in_flight",
        /// The DR copy is complete and usable.
        Completed => "completed",
        /// The copy failed (see `last_error`); may be retried.
        Failed => "failed",
        /// A newer source made this copy unnecessary before it completed.
        Superseded => "superseded",
        /// The DR copy was deleted by retention.
        Deleted => "deleted",
    }
}

impl CopyState {
    /// Whether the copy still occupies (or will occupy) an in-flight slot.
    pub fn is_open(self) -> bool {
        matches!(self, CopyState::Queued | CopyState::InFlight)
    }
}

text_enum! {
    /// Kind of restore run (D1, D12).
    pub enum RunMode {
        /// A declared disaster: production DNS is cut over.
        Disaster => "disaster",
        /// A drill: restored with drill tags, production DNS untouched, torn down after.
        Drill => "drill",
    }
}

text_enum! {
    /// Life cycle of a restore run. The first four states are *active* (see
    /// [`RunState::is_active`] and `Store::active_runs`).
    pub enum RunState {
        /// Declared; waits for a second principal (two-person rule).
        AwaitingApproval => "awaiting_approval",
        /// Approved (or no approval needed); not started yet.
        Pending => "pending",
        /// Restoring.
        Running => "running",
        /// A drill deleting what it created.
        TearingDown => "tearing_down",
        /// Finished successfully.
        Succeeded => "succeeded",
        /// Finished with an error (see `error`).
        Failed => "failed",
        /// Stopped by an operator.
        Cancelled => "cancelled",
    }
}

impl RunState {
    /// Whether a run in this state still needs the executor (not finished).
    pub fn is_active(self) -> bool {
        !matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }
}

text_enum! {
    /// Life cycle of a restore step (one tier's launch group, a load-balancer batch, …).
    pub enum StepState {
        /// Planned.
        Pending => "pending",
        /// Started.
        Running => "running",
        /// Finished successfully.
        Done => "done",
        /// Finished with an error.
        Failed => "failed",
        /// Not needed (dry run, drill without DNS, …).
        Skipped => "skipped",
    }
}

text_enum! {
    /// Life cycle of a journalled item: written `pending`, then `requested` *before* the AWS
    /// mutation (with its client token), then `done` or `failed` after it (D10).
    pub enum ItemState {
        /// Not yet sent to AWS.
        Pending => "pending",
        /// The mutation was (possibly) sent; on resume, look it up by token or tags first.
        Requested => "requested",
        /// AWS confirmed; `dr_id` holds the result.
        Done => "done",
        /// Gave up (see `last_error`).
        Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_for_every_variant() {
        for state in CopyState::ALL {
            assert_eq!(state.as_str().parse::<CopyState>(), Ok(*state));
            let json = serde_json::to_string(state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        for state in RunState::ALL {
            assert_eq!(state.to_string().parse::<RunState>(), Ok(*state));
        }
        assert_eq!(
            CopyKind::RdsClusterSnapshot.as_str(),
            "rds_cluster_snapshot"
        );
        assert_eq!(ItemState::Requested.as_str(), "requested");
    }

    #[test]
    fn unknown_text_is_rejected_with_the_type_name() {
        let err = "sideways".parse::<CopyState>().unwrap_err();
        assert_eq!(err.type_name, "CopyState");
        assert_eq!(err.value, "sideways");
        assert_eq!(err.to_string(), "\"sideways\" is not a valid CopyState");
    }

    #[test]
    fn active_and_open_states() {
        let active: Vec<_> = RunState::ALL.iter().filter(|s| s.is_active()).collect();
        assert_eq!(
            active,
            [
                &RunState::AwaitingApproval,
                &RunState::Pending,
                &RunState::Running,
                &RunState::TearingDown
            ]
        );
        assert!(CopyState::InFlight.is_open());
        assert!(!CopyState::Completed.is_open());
    }
}
