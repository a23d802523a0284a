//! The `docker` CLI calls of the container tier. The CLI negotiates the API version with any
//! daemon, prints errors people recognise, and every call here is a single short operation.

use std::net::Ipv4Addr;
use std::process::Command;

use super::ContainerError;

/// Run `docker <args>` and return its trimmed stdout.
pub fn run<I, S>(args: I) -> Result<String, ContainerError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let shown = args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    let output = Command::new("docker").args(&args).output().map_err(|e| ContainerError::Docker {
        args: shown.clone(),
        reason: format!("cannot run docker: {e}"),
    })?;
    if !output.status.success() {
        return Err(ContainerError::Docker {
            args: shown,
            reason: format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim()),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The daemon's maximum API version (`1.41` for Docker 20.10), or an error telling that
/// Docker is missing or not running.
pub fn server_api_version() -> Result<(u32, u32), ContainerError> {
    let text = run(["version", "--format", "{{.Server.APIVersion}}"])
        .map_err(|e| ContainerError::Images(format!("Docker is not usable here: {e}")))?;
    parse_api_version(&text)
        .ok_or_else(|| ContainerError::Images(format!("unexpected Docker API version {text:?}")))
}

/// `"1.41"` → `(1, 41)`.
pub fn parse_api_version(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().trim_start_matches('v').split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Docker is installed and its daemon answers.
pub fn check_available() -> Result<(), ContainerError> {
    server_api_version().map(|_| ())
}

/// True when `image` is in the local image store.
pub fn image_exists(image: &str) -> Result<bool, ContainerError> {
    let output =
        Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]).output().map_err(
            |e| ContainerError::Docker { args: format!("image inspect {image}"), reason: e.to_string() },
        )?;
    Ok(output.status.success())
}

/// `docker pause` (SIGSTOP of every process in the container, through the freezer cgroup).
pub fn pause(container: &str) -> Result<(), ContainerError> {
    run(["pause", container]).map(drop)
}

/// `docker unpause`.
pub fn unpause(container: &str) -> Result<(), ContainerError> {
    run(["unpause", container]).map(drop)
}

/// `docker network disconnect --force`: the container loses its interface on `network`.
pub fn network_disconnect(network: &str, container: &str) -> Result<(), ContainerError> {
    run(["network", "disconnect", "--force", network, container]).map(drop)
}

/// `docker network connect`.
pub fn network_connect(network: &str, container: &str) -> Result<(), ContainerError> {
    run(["network", "connect", network, container]).map(drop)
}

/// `docker network connect --ip`: reattach with the address it had (a kind node's address
/// is in its certificates and its kubelet's configuration).
pub fn network_connect_with_ip(network: &str, container: &str, ip: Ipv4Addr) -> Result<(), ContainerError> {
    run(["network", "connect", "--ip", &ip.to_string(), network, container]).map(drop)
}

/// Reattach `container` to `network` with the IPv4 address `ip` it had there: `--ip` where
/// the network has a user-configured IPv4 subnet, else a plain connect, whose IPAM hands out
/// the lowest free address (the same one when containers are reconnected in the order they
/// were disconnected, as kind's networks need: a node's address is in its certificates). An
/// address that changed anyway is an error, not a silently broken node.
pub fn reconnect_keeping_address(network: &str, container: &str, ip: Ipv4Addr) -> Result<(), ContainerError> {
    if network_connect_with_ip(network, container, ip).is_err() {
        network_connect(network, container)?;
    }
    match container_ip(container, network)? {
        Some(now) if now == ip => Ok(()),
        other => Err(ContainerError::Docker {
            args: format!("network connect {network} {container}"),
            reason: format!("reconnected with address {other:?}, it had {ip}"),
        }),
    }
}

/// The host's IPv4 address on `network` (its bridge's gateway), for networks with IPv6
/// subnets too (kind's): the first IPAM gateway that is IPv4.
pub fn network_ipv4_gateway(network: &str) -> Result<Ipv4Addr, ContainerError> {
    let text =
        run(["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}", network])?;
    first_ipv4(&text).ok_or_else(|| ContainerError::Docker {
        args: format!("network inspect {network}"),
        reason: format!("no IPv4 gateway among {text:?}"),
    })
}

/// The first IPv4 address among whitespace-separated words.
fn first_ipv4(text: &str) -> Option<Ipv4Addr> {
    text.split_whitespace().find_map(|word| word.parse().ok())
}

/// The IPv4 address of `container` on `network`, if it is attached and running.
pub fn container_ip(container: &str, network: &str) -> Result<Option<Ipv4Addr>, ContainerError> {
    let format =
        format!("{{{{with index .NetworkSettings.Networks {network:?}}}}}{{{{.IPAddress}}}}{{{{end}}}}");
    let text = run(["inspect", "--format", &format, container])?;
    Ok(text.parse().ok())
}

/// A user-defined bridge network, removed on drop.
#[derive(Debug)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// The host's address on it (the bridge's gateway): what containers reach the host at.
    pub gateway: Ipv4Addr,
}

impl Network {
    /// `docker network create <name>` and read its gateway address.
    pub fn create(name: &str) -> Result<Network, ContainerError> {
        run(["network", "create", "--label", "shipper-harness=1", name])?;
        // From here on the network is removed on drop, also when reading the gateway fails.
        let mut network = Network { name: name.to_owned(), gateway: Ipv4Addr::UNSPECIFIED };
        let gateway = run(["network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", name])?;
        network.gateway = gateway.parse().map_err(|e| ContainerError::Docker {
            args: format!("network inspect {name}"),
            reason: format!("gateway {gateway:?} is not an IPv4 address: {e}"),
        })?;
        Ok(network)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = run(["network", "rm", &self.name]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_parse() {
        assert_eq!(parse_api_version("1.41\n"), Some((1, 41)));
        assert_eq!(parse_api_version("v1.53"), Some((1, 53)));
        assert_eq!(parse_api_version("garbage"), None);
        assert!(parse_api_version("1.41").expect("v") < parse_api_version("1.53").expect("v"));
    }

    #[test]
    fn the_ipv4_gateway_is_found_among_ipv6_ones() {
        assert_eq!(first_ipv4("fc00:f853:ccd:e793::1 172.18.0.1 "), Some(Ipv4Addr::new(172, 18, 0, 1)));
        assert_eq!(first_ipv4("fc00::1"), None);
    }
}
