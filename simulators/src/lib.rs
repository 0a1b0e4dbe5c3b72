//! The simulators Monti's demo and tests run against: a contact center ([`sim`]) whose events
//! are held to Erlang C, and an Asterisk PBX's manager interface ([`ami_sim`]) and REST
//! interface ([`ari_sim`]) that report the same floor as a real PBX would. They are not part
//! of the product: the server uses them only for `monti demo` and `monti simulate`.

pub mod ami_sim;
pub mod ari_sim;
pub mod sim;

pub use ami_sim::{AmiSimulator, Member};
pub use ari_sim::AriSimulator;

/// Both halves of a simulated Asterisk: what the demo and the tests run the floor through.
pub struct SimulatedPbx {
    pub ami: AmiSimulator,
    pub ari: AriSimulator,
}

impl SimulatedPbx {
    /// Starts both, each with its own account (user `monti`).
    pub async fn start(ami_password: &str, ari_password: &str) -> std::io::Result<Self> {
        Ok(Self {
            ami: AmiSimulator::start("monti", ami_password).await?,
            ari: AriSimulator::start("monti", ari_password).await?,
        })
    }

    /// A contact-center event as both interfaces report it (see [`AmiSimulator::play`] and
    /// [`AriSimulator::play`]).
    pub fn play(&self, event: &monti_domain::events::Event) {
        self.ami.play(event);
        self.ari.play(event);
    }
}
