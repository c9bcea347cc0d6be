//! The Route 53 hosted zones of Elastic Load Balancing per region, from AWS's published table
//! ("Elastic Load Balancing endpoints and quotas", AWS General Reference). An alias record
//! pointing at a load balancer names its zone. `CreateLoadBalancer` of a classic load balancer
//! does not answer it, and moto leaves `CanonicalHostedZoneNameID` out, so the restore (and the
//! lab's seeder) take it from here. Application and classic load balancers share a zone per
//! region; network load balancers have their own. Only the commercial regions listed are
//! known; elsewhere the answer is `None`.

/// Which load balancers a zone is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElbFlavour {
    /// Classic and application load balancers.
    ClassicOrApplication,
    /// Network load balancers.
    Network,
}

/// (region, classic/application zone, network zone).
const ZONES: &[(&str, &str, Option<&str>)] = &[
    ("us-east-1", "Z35SXDOTRQ7X7K", Some("Z26RNL4JYFTOTI")),
    ("us-east-2", "Z3AADJGX6KTTL2", Some("ZLMOA37VPKANP")),
    ("us-west-1", "Z368ELLRRE2KJ0", Some("Z24FKFUX50B4VW")),
    ("us-west-2", "Z1H1FL5HABSF5", Some("Z18D5FSROUN65G")),
    ("ca-central-1", "ZQSVJUPU6J1EY", Some("Z2EPGBW3API2WT")),
    ("sa-east-1", "Z2P70J7HTTTPLU", Some("ZTK26PT1VY4CU")),
    ("eu-west-1", "Z32O12XQLNTSW2", Some("Z2IFOLAFXWLO4F")),
    ("eu-west-2", "ZHURV8PSTC4K8", Some("ZD4D7Y8KGAS4G")),
    ("eu-west-3", "Z3Q77PNBQS71R4", Some("Z1CMS0P5QUZ6D5")),
    ("eu-central-1", "Z215JYRZR1TBD5", Some("Z3F0SRJ5LGBH90")),
    ("eu-north-1", "Z23TAZ6LKFMNIO", Some("Z1UDT6IFJ4EJM")),
    ("eu-south-1", "Z3ULH7SSC9OV64", Some("Z23146JA1KNAFP")),
    ("ap-south-1", "ZP97RAFLXTNZK", Some("ZVDDRBQ08TROA")),
    ("ap-east-1", "Z3DQVH9N71FHZ0", Some("Z12Y7K3UBGUAD1")),
    ("ap-northeast-1", "Z14GRHDCWA56QT", Some("Z31USIVHYNEOWT")),
    ("ap-northeast-2", "ZWKZPGTI48KDX", Some("ZIBE1TIR4HY56")),
    ("ap-northeast-3", "Z5LXEXXYW11ES", None),
    ("ap-southeast-1", "Z1LMS91P8CMLE5", Some("ZKVM4W9LS7TM")),
    ("ap-southeast-2", "Z1GM3OXH4ZPM65", Some("ZCT6FZBF4DROD")),
    ("me-south-1", "ZS929ML54UICD", None),
    ("af-south-1", "Z268VQBMOI5EKX", None),
];

/// The hosted zone of `flavour` load balancers in `region`, if AWS's table is known here.
pub fn elb_hosted_zone(region: &str, flavour: ElbFlavour) -> Option<&'static str> {
    let (_, classic, network) = ZONES.iter().find(|(r, _, _)| *r == region)?;
    match flavour {
        ElbFlavour::ClassicOrApplication => Some(classic),
        ElbFlavour::Network => *network,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_by_region_and_flavour() {
        use ElbFlavour::*;
        assert_eq!(
            elb_hosted_zone("us-west-2", ClassicOrApplication),
            Some("Z1H1FL5HABSF5")
        );
        assert_eq!(
            elb_hosted_zone("us-east-1", Network),
            Some("Z26RNL4JYFTOTI")
        );
        assert_eq!(elb_hosted_zone("me-south-1", Network), None);
        assert_eq!(elb_hosted_zone("mars-north-1", ClassicOrApplication), None);
        let mut regions: Vec<&str> = ZONES.iter().map(|z| z.0).collect();
        regions.sort_unstable();
        regions.dedup();
        assert_eq!(regions.len(), ZONES.len(), "each region once");
    }
}
