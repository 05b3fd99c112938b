//! The hosted pages' own words (docs/pages.md), in English, French,
//! Spanish, Portuguese and German; the consent text is the form's own.

use crate::domain::purpose::Purpose;

/// Every phrase a page shows besides the form's consent text.
pub struct Words {
    pub lang: &'static str,
    pub opt_in_title: &'static str,
    pub number: &'static str,
    pub number_hint: &'static str,
    pub country: &'static str,
    pub purposes: &'static str,
    pub marketing: &'static str,
    pub utility: &'static str,
    pub authentication: &'static str,
    pub send: &'static str,
    pub withdraw: &'static str,
    pub opt_out_link: &'static str,
    pub privacy: &'static str,
    pub invalid_number: &'static str,
    pub no_purpose: &'static str,
    pub too_fast: &'static str,
    /// The form was changed after the page was served: read it again.
    pub form_changed: &'static str,
    pub expired: &'static str,
    pub rate_limited: &'static str,
    pub thanks: &'static str,
    pub recorded: &'static str,
    pub confirm: &'static str,
    pub confirm_link: &'static str,
    pub opt_out_title: &'static str,
    pub opt_out_text: &'static str,
    pub opt_out_send: &'static str,
    pub opt_out_done: &'static str,
}

impl Words {
    pub fn purpose(&self, purpose: Purpose) -> &'static str {
        match purpose {
            Purpose::Marketing => self.marketing,
            Purpose::Utility => self.utility,
            Purpose::Authentication => self.authentication,
        }
    }
}

/// The words of a language by its primary subtag (`pt-BR` → Portuguese);
/// English for any other.
pub fn words(language: &str) -> &'static Words {
    let primary = language
        .split('-')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    match primary.as_str() {
        "fr" => &FR,
        "es" => &ES,
        "pt" => &PT,
        "de" => &DE,
        _ => &EN,
    }
}

const EN: Words = Words {
    lang: "en",
    opt_in_title: "Messages from",
    number: "Your mobile number",
    number_hint: "With or without the country code.",
    country: "Country",
    purposes: "What may we send you?",
    marketing: "Offers and news",
    utility: "Updates on your orders and account",
    authentication: "Login and verification codes",
    send: "Agree and sign up",
    withdraw: "You can withdraw at any time:",
    opt_out_link: "stop messages",
    privacy: "Privacy policy",
    invalid_number: "This is not a valid mobile number for the country chosen.",
    no_purpose: "Tick at least one box.",
    too_fast: "Please take a moment to read the text, then send again.",
    form_changed: "This form has changed since you opened it. Nothing was recorded: please read it again, tick what you agree to and send again.",
    expired: "This page has expired. Please load it again.",
    rate_limited: "Too many attempts. Please try again later.",
    thanks: "Thank you",
    recorded: "Your consent has been recorded.",
    confirm: "One more step: send this code to us on WhatsApp from the same number.",
    confirm_link: "Confirm on WhatsApp",
    opt_out_title: "Stop messages",
    opt_out_text: "Enter your number to stop every message from",
    opt_out_send: "Stop messages",
    opt_out_done: "Done. If this number received messages from us, it will receive no more.",
};

const FR: Words = Words {
    lang: "fr",
    opt_in_title: "Messages de",
    number: "Votre numéro de mobile",
    number_hint: "Avec ou sans l'indicatif du pays.",
    country: "Pays",
    purposes: "Que pouvons-nous vous envoyer ?",
    marketing: "Offres et nouveautés",
    utility: "Suivi de vos commandes et de votre compte",
    authentication: "Codes de connexion et de vérification",
    send: "J'accepte et je m'inscris",
    withdraw: "Vous pouvez retirer votre accord à tout moment :",
    opt_out_link: "arrêter les messages",
    privacy: "Politique de confidentialité",
    invalid_number: "Ce numéro de mobile n'est pas valide pour le pays choisi.",
    no_purpose: "Cochez au moins une case.",
    too_fast: "Prenez le temps de lire le texte, puis envoyez à nouveau.",
    form_changed: "Ce formulaire a changé depuis que vous l'avez ouvert. Rien n'a été enregistré : relisez-le, cochez ce que vous acceptez et envoyez à nouveau.",
    expired: "Cette page a expiré. Veuillez la recharger.",
    rate_limited: "Trop de tentatives. Veuillez réessayer plus tard.",
    thanks: "Merci",
    recorded: "Votre accord a été enregistré.",
    confirm: "Dernière étape : envoyez-nous ce code sur WhatsApp depuis le même numéro.",
    confirm_link: "Confirmer sur WhatsApp",
    opt_out_title: "Arrêter les messages",
    opt_out_text: "Saisissez votre numéro pour ne plus recevoir aucun message de",
    opt_out_send: "Arrêter les messages",
    opt_out_done: "C'est fait. Si ce numéro recevait nos messages, il n'en recevra plus.",
};

const ES: Words = Words {
    lang: "es",
    opt_in_title: "Mensajes de",
    number: "Tu número de móvil",
    number_hint: "Con o sin el prefijo del país.",
    country: "País",
    purposes: "¿Qué podemos enviarte?",
    marketing: "Ofertas y novedades",
    utility: "Avisos de tus pedidos y de tu cuenta",
    authentication: "Códigos de acceso y verificación",
    send: "Acepto y me suscribo",
    withdraw: "Puedes retirar tu consentimiento cuando quieras:",
    opt_out_link: "dejar de recibir mensajes",
    privacy: "Política de privacidad",
    invalid_number: "Este número de móvil no es válido para el país elegido.",
    no_purpose: "Marca al menos una casilla.",
    too_fast: "Tómate un momento para leer el texto y vuelve a enviarlo.",
    form_changed: "Este formulario ha cambiado desde que lo abriste. No se ha registrado nada: léelo de nuevo, marca lo que aceptas y vuelve a enviarlo.",
    expired: "Esta página ha caducado. Vuelve a cargarla.",
    rate_limited: "Demasiados intentos. Inténtalo más tarde.",
    thanks: "Gracias",
    recorded: "Hemos registrado tu consentimiento.",
    confirm: "Un último paso: envíanos este código por WhatsApp desde el mismo número.",
    confirm_link: "Confirmar en WhatsApp",
    opt_out_title: "Dejar de recibir mensajes",
    opt_out_text: "Escribe tu número para no recibir ningún mensaje más de",
    opt_out_send: "Dejar de recibir mensajes",
    opt_out_done: "Hecho. Si este número recibía mensajes nuestros, no recibirá más.",
};

const PT: Words = Words {
    lang: "pt",
    opt_in_title: "Mensagens de",
    number: "O seu número de celular",
    number_hint: "Com ou sem o código do país.",
    country: "País",
    purposes: "O que podemos enviar para você?",
    marketing: "Ofertas e novidades",
    utility: "Avisos sobre os seus pedidos e a sua conta",
    authentication: "Códigos de acesso e verificação",
    send: "Concordo e quero receber",
    withdraw: "Você pode retirar o consentimento a qualquer momento:",
    opt_out_link: "parar as mensagens",
    privacy: "Política de privacidade",
    invalid_number: "Este número de celular não é válido para o país escolhido.",
    no_purpose: "Marque pelo menos uma opção.",
    too_fast: "Leia o texto com calma e envie novamente.",
    form_changed: "Este formulário mudou desde que você o abriu. Nada foi registrado: leia-o novamente, marque o que aceita e envie de novo.",
    expired: "Esta página expirou. Carregue-a de novo.",
    rate_limited: "Tentativas demais. Tente novamente mais tarde.",
    thanks: "Obrigado",
    recorded: "O seu consentimento foi registrado.",
    confirm: "Falta um passo: envie este código para nós no WhatsApp pelo mesmo número.",
    confirm_link: "Confirmar no WhatsApp",
    opt_out_title: "Parar as mensagens",
    opt_out_text: "Informe o seu número para não receber mais nenhuma mensagem de",
    opt_out_send: "Parar as mensagens",
    opt_out_done: "Pronto. Se este número recebia mensagens nossas, não receberá mais.",
};

const DE: Words = Words {
    lang: "de",
    opt_in_title: "Nachrichten von",
    number: "Ihre Mobilnummer",
    number_hint: "Mit oder ohne Ländervorwahl.",
    country: "Land",
    purposes: "Was dürfen wir Ihnen schicken?",
    marketing: "Angebote und Neuigkeiten",
    utility: "Hinweise zu Bestellungen und Konto",
    authentication: "Anmelde- und Bestätigungscodes",
    send: "Zustimmen und anmelden",
    withdraw: "Sie können Ihre Einwilligung jederzeit widerrufen:",
    opt_out_link: "Nachrichten abbestellen",
    privacy: "Datenschutz",
    invalid_number: "Das ist keine gültige Mobilnummer für das gewählte Land.",
    no_purpose: "Kreuzen Sie mindestens ein Kästchen an.",
    too_fast: "Bitte lesen Sie den Text in Ruhe und senden Sie dann erneut.",
    form_changed: "Dieses Formular wurde geändert, seit Sie es geöffnet haben. Es wurde nichts gespeichert: Bitte lesen Sie es erneut, kreuzen Sie an, womit Sie einverstanden sind, und senden Sie es dann erneut.",
    expired: "Diese Seite ist abgelaufen. Bitte laden Sie sie neu.",
    rate_limited: "Zu viele Versuche. Bitte versuchen Sie es später erneut.",
    thanks: "Vielen Dank",
    recorded: "Ihre Einwilligung wurde gespeichert.",
    confirm: "Noch ein Schritt: Schicken Sie uns diesen Code per WhatsApp von derselben Nummer.",
    confirm_link: "Auf WhatsApp bestätigen",
    opt_out_title: "Nachrichten abbestellen",
    opt_out_text: "Geben Sie Ihre Nummer ein, um keine Nachrichten mehr zu erhalten von",
    opt_out_send: "Abbestellen",
    opt_out_done:
        "Erledigt. Falls diese Nummer Nachrichten von uns erhielt, erhält sie keine mehr.",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_language_by_its_primary_subtag() {
        assert_eq!(words("pt-BR").lang, "pt");
        assert_eq!(words("DE").lang, "de");
        assert_eq!(words("fr-CA").lang, "fr");
        assert_eq!(words("es").lang, "es");
        assert_eq!(words("it").lang, "en");
        assert_eq!(words("").lang, "en");
        for w in [&EN, &FR, &ES, &PT, &DE] {
            assert!(!w.send.is_empty() && !w.opt_out_done.is_empty());
        }
        assert_ne!(words("de").send, words("en").send);
    }
}
