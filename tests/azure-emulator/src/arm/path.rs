//! ARM request paths, compared case-insensitively as ARM does: VMs, scale sets, operation status.

/// What a VM or scale-set path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// `…/virtualMachines/{name}`.
    Vm,
    /// `…/virtualMachineScaleSets/{name}`.
    ScaleSet,
}

impl ResourceKind {
    /// ARM's resource type segment.
    pub fn segment(self) -> &'static str {
        match self {
            Self::Vm => "virtualMachines",
            Self::ScaleSet => "virtualMachineScaleSets",
        }
    }

    /// ARM's `type` of the resource.
    pub fn resource_type(self) -> &'static str {
        match self {
            Self::Vm => "Microsoft.Compute/virtualMachines",
            Self::ScaleSet => "Microsoft.Compute/virtualMachineScaleSets",
        }
    }
}

/// A path the emulated ARM serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArmPath {
    /// A VM or scale set.
    Resource {
        /// Which kind.
        kind: ResourceKind,
        /// The full resource id as written (no trailing slash).
        id: String,
        /// Resource group as written.
        group: String,
        /// Name as written.
        name: String,
    },
    /// `/subscriptions/{sub}/providers/Microsoft.Compute/locations/{loc}/operations/{id}`.
    Operation {
        /// Operation id.
        id: String,
    },
}

impl ArmPath {
    /// Reads a request path; `None` for anything the emulator does not serve.
    pub fn parse(path: &str) -> Option<Self> {
        let trimmed = path.trim_end_matches('/');
        let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
        let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
        let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
        match lower.as_slice() {
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                "microsoft.compute",
                kind,
                _,
            ] => {
                let kind = match *kind {
                    "virtualmachines" => ResourceKind::Vm,
                    "virtualmachinescalesets" => ResourceKind::ScaleSet,
                    _ => return None,
                };
                let (group, name) = (segments[3], segments[7]);
                (!group.is_empty() && !name.is_empty()).then(|| Self::Resource {
                    kind,
                    id: trimmed.to_owned(),
                    group: group.to_owned(),
                    name: name.to_owned(),
                })
            }
            [
                "subscriptions",
                _,
                "providers",
                "microsoft.compute",
                "locations",
                _,
                "operations",
                _,
            ] => Some(Self::Operation {
                id: segments[7].to_owned(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_paths_are_read_in_any_case() {
        let p = ArmPath::parse(
            "/SUBSCRIPTIONS/s/resourcegroups/RG/Providers/microsoft.compute/VIRTUALMACHINESCALESETS/ss0/",
        );
        assert_eq!(
            p,
            Some(ArmPath::Resource {
                kind: ResourceKind::ScaleSet,
                id: "/SUBSCRIPTIONS/s/resourcegroups/RG/Providers/microsoft.compute/VIRTUALMACHINESCALESETS/ss0".into(),
                group: "RG".into(),
                name: "ss0".into(),
            })
        );
    }

    #[test]
    fn operation_paths_name_the_operation() {
        let p = ArmPath::parse(
            "/subscriptions/s/providers/Microsoft.Compute/locations/westeurope/operations/abc",
        );
        assert_eq!(p, Some(ArmPath::Operation { id: "abc".into() }));
    }

    #[test]
    fn other_paths_are_not_served() {
        for path in [
            "/",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/0",
            "/subscriptions/s/resourceGroups//providers/Microsoft.Compute/virtualMachines/x",
        ] {
            assert_eq!(ArmPath::parse(path), None, "{path}");
        }
    }
}
