"""Non-English emails (German, French, Spanish, Portuguese) for every category.

The ``non_english`` problem area applies to any category: the label follows the content, the
language only makes it harder. Each category has templates per language; amounts, dates and
times use the local formats (``1.234,56 €``, ``14.03.2025`` / ``14/03/2025``, ``14:30``).
"""

from __future__ import annotations

from feedbackloop.synth._fields import Draft, Fields, personal_address

LANGS = ("de", "fr", "es", "pt")

_BRANDS = {
    "bank": {
        "de": (("Sparkasse", "sparkasse.de"), ("Deutsche Bank", "deutsche-bank.de"), ("ING", "ing.de")),
        "fr": (
            ("BNP Paribas", "bnpparibas.fr"),
            ("Société Générale", "societegenerale.fr"),
            ("Crédit Agricole", "credit-agricole.fr"),
        ),
        "es": (("BBVA", "bbva.es"), ("CaixaBank", "caixabank.es"), ("Santander", "santander.es")),
        "pt": (
            ("Millennium bcp", "millenniumbcp.pt"),
            ("Caixa Geral de Depósitos", "cgd.pt"),
            ("Novo Banco", "novobanco.pt"),
        ),
    },
    "utility": {
        "de": (
            ("Stadtwerke Köln", "rheinenergie.com"),
            ("Telekom", "telekom.de"),
            ("Vodafone", "vodafone.de"),
        ),
        "fr": (("EDF", "edf.fr"), ("Orange", "orange.fr"), ("SFR", "sfr.fr")),
        "es": (("Endesa", "endesa.com"), ("Movistar", "movistar.es"), ("Iberdrola", "iberdrola.es")),
        "pt": (("EDP", "edp.pt"), ("MEO", "meo.pt"), ("NOS", "nos.pt")),
    },
    "shop": {
        "de": (("Otto", "otto.de"), ("Zalando", "zalando.de"), ("MediaMarkt", "mediamarkt.de")),
        "fr": (("Fnac", "fnac.com"), ("Cdiscount", "cdiscount.com"), ("Decathlon", "decathlon.fr")),
        "es": (
            ("El Corte Inglés", "elcorteingles.es"),
            ("PcComponentes", "pccomponentes.com"),
            ("Mango", "mango.com"),
        ),
        "pt": (("Worten", "worten.pt"), ("Continente", "continente.pt"), ("FNAC Portugal", "fnac.pt")),
    },
    "carrier": {
        "de": (("DHL Paket", "dhl.de"), ("Hermes", "myhermes.de"), ("DPD", "dpd.de")),
        "fr": (
            ("Colissimo", "laposte.fr"),
            ("Chronopost", "chronopost.fr"),
            ("Mondial Relay", "mondialrelay.fr"),
        ),
        "es": (("Correos", "correos.es"), ("SEUR", "seur.com"), ("MRW", "mrw.es")),
        "pt": (("CTT", "ctt.pt"), ("DPD Portugal", "dpd.pt"), ("GLS Portugal", "gls-portugal.pt")),
    },
    "travel": {
        "de": (("Lufthansa", "lufthansa.com"), ("Deutsche Bahn", "bahn.de"), ("Eurowings", "eurowings.com")),
        "fr": (
            ("Air France", "airfrance.fr"),
            ("SNCF Connect", "sncf-connect.com"),
            ("Transavia", "transavia.com"),
        ),
        "es": (("Iberia", "iberia.com"), ("Renfe", "renfe.com"), ("Vueling", "vueling.com")),
        "pt": (
            ("TAP Air Portugal", "flytap.com"),
            ("CP Comboios", "cp.pt"),
            ("Pestana Hotels", "pestana.com"),
        ),
    },
    "service": {
        "de": (("GMX", "gmx.net"), ("WEB.DE", "web.de"), ("Google", "google.com")),
        "fr": (("Orange", "orange.fr"), ("Free", "free.fr"), ("Microsoft", "microsoft.com")),
        "es": (("Movistar", "movistar.es"), ("Google", "google.com"), ("Wallapop", "wallapop.com")),
        "pt": (("MEO", "meo.pt"), ("Google", "google.com"), ("OLX", "olx.pt")),
    },
}

_FAKE = {
    "de": ("sparkasse-kundensicherheit.info", "Sparkasse"),
    "fr": ("ameli-remboursement.fr.com", "Assurance Maladie"),
    "es": ("correos-envio-pendiente.com", "Correos"),
    "pt": ("ctt-encomenda-taxa.com", "CTT"),
}

_NAMES = {
    "de": ("Lukas", "Anna", "Jonas", "Lea", "Felix", "Marie"),
    "fr": ("Camille", "Louis", "Chloé", "Hugo", "Manon", "Théo"),
    "es": ("Lucía", "Javier", "Marta", "Pablo", "Carmen", "Diego"),
    "pt": ("Inês", "João", "Beatriz", "Tiago", "Mariana", "Rui"),
}
_SURNAMES = {
    "de": ("Hoffmann", "Schulz", "Becker", "Wagner"),
    "fr": ("Martin", "Bernard", "Petit", "Durand"),
    "es": ("García", "Fernández", "López", "Martín"),
    "pt": ("Silva", "Santos", "Ferreira", "Pereira"),
}

# category -> language -> (brand kind or None for a person, sender local parts, subjects, bodies, actions)
_T: dict[str, dict[str, tuple]] = {
    "security_alert": {
        "de": (
            "service",
            ("sicherheit", "no-reply"),
            (
                "Neue Anmeldung bei Ihrem Konto",
                "Sicherheitshinweis: neues Gerät",
                "Ihr Passwort wurde geändert",
            ),
            (
                "Hallo {name},\n\nwir haben eine neue Anmeldung bei Ihrem {brand}-Konto von {device} in {city} festgestellt ({ldate}, {ltime} Uhr).\n\n"
                "Wenn Sie das waren, müssen Sie nichts tun. Falls nicht, ändern Sie bitte sofort Ihr Passwort und prüfen Sie Ihre Sicherheitseinstellungen: {link}\n\nIhr {brand}-Team",
                "Guten Tag,\n\ndas Passwort für Ihr {brand}-Konto wurde am {ldate} geändert. Falls Sie diese Änderung nicht vorgenommen haben, sichern Sie Ihr Konto umgehend unter {link}.\n\n"
                "{brand} wird Sie niemals per E-Mail nach Ihrem Passwort fragen.",
            ),
            ["review_security", "change_password"],
        ),
        "fr": (
            "service",
            ("securite", "no-reply"),
            ("Nouvelle connexion à votre compte", "Alerte de sécurité", "Un nouvel appareil a été ajouté"),
            (
                "Bonjour {name},\n\nUne nouvelle connexion à votre compte {brand} a été détectée depuis {device} à {city} le {ldate} à {ltime}.\n\n"
                "Si c'était vous, vous n'avez rien à faire. Sinon, modifiez votre mot de passe et vérifiez vos paramètres de sécurité : {link}\n\nL'équipe {brand}",
                "Bonjour,\n\nLa validation en deux étapes a été désactivée sur votre compte {brand} le {ldate}. Si vous n'êtes pas à l'origine de cette modification, "
                "réactivez-la immédiatement depuis {link}.",
            ),
            ["review_security", "enable_2fa"],
        ),
        "es": (
            "service",
            ("seguridad", "no-reply"),
            (
                "Nuevo inicio de sesión en tu cuenta",
                "Alerta de seguridad de {brand}",
                "Se ha cambiado tu contraseña",
            ),
            (
                "Hola {name}:\n\nHemos detectado un nuevo inicio de sesión en tu cuenta de {brand} desde {device} en {city} el {ldate} a las {ltime}.\n\n"
                "Si fuiste tú, no tienes que hacer nada. Si no reconoces esta actividad, cambia tu contraseña y revisa tu seguridad en {link}\n\nEl equipo de {brand}",
                "Hola:\n\nLa contraseña de tu cuenta de {brand} se cambió el {ldate}. Si no has sido tú, protege tu cuenta ahora en {link}.",
            ),
            ["review_security", "change_password"],
        ),
        "pt": (
            "service",
            ("seguranca", "no-reply"),
            ("Novo início de sessão na sua conta", "Alerta de segurança", "A sua palavra-passe foi alterada"),
            (
                "Olá {name},\n\nDetetámos um novo início de sessão na sua conta {brand} a partir de {device} em {city}, no dia {ldate} às {ltime}.\n\n"
                "Se foi você, não precisa de fazer nada. Caso contrário, altere a sua palavra-passe e reveja a segurança da conta em {link}\n\nA equipa {brand}",
            ),
            ["review_security", "change_password"],
        ),
    },
    "phishing": {
        "de": (
            "fake",
            ("kundenservice", "sicherheit"),
            (
                "Ihr Konto wurde vorübergehend gesperrt",
                "Dringend: Bestätigen Sie Ihre Daten",
                "Letzte Mahnung: Kontoverifizierung",
            ),
            (
                "Sehr geehrter Kunde,\n\naufgrund verdächtiger Aktivitäten wurde Ihr Online-Banking eingeschränkt. Bitte bestätigen Sie innerhalb von 24 Stunden Ihre Identität "
                "mit Ihrer Anmelde-PIN und TAN: {bad}\n\nAndernfalls wird Ihr Konto dauerhaft gesperrt.",
            ),
            ["report_phishing", "delete"],
        ),
        "fr": (
            "fake",
            ("remboursement", "service"),
            (
                "Vous avez droit à un remboursement",
                "Dernier rappel : mettez à jour vos informations",
                "Action requise sur votre dossier",
            ),
            (
                "Bonjour,\n\nAprès vérification, un remboursement de {lamount} est en attente sur votre dossier. Pour le recevoir, saisissez vos coordonnées bancaires "
                "et le code reçu par SMS sur notre formulaire sécurisé : {bad}\n\nSans action de votre part sous 48 h, le remboursement sera annulé.",
            ),
            ["report_phishing", "delete"],
        ),
        "es": (
            "fake",
            ("avisos", "envios"),
            (
                "Su paquete está retenido",
                "Pago pendiente de gastos de envío",
                "Último aviso: entrega suspendida",
            ),
            (
                "Estimado cliente:\n\nSu paquete no ha podido ser entregado porque faltan {lamount} de gastos de aduana. Pague ahora con su tarjeta para reprogramar "
                "la entrega: {bad}\n\nSi no paga en 48 horas, el paquete será devuelto.",
            ),
            ["report_phishing", "delete"],
        ),
        "pt": (
            "fake",
            ("apoio", "encomendas"),
            ("A sua encomenda aguarda pagamento", "Taxa alfandegária pendente", "Confirme a sua morada"),
            (
                "Caro cliente,\n\nA sua encomenda está retida por falta de pagamento de uma taxa de {lamount}. Para a libertar, introduza os dados do seu cartão em {bad}\n\n"
                "Encomendas não reclamadas em 48 horas serão devolvidas.",
            ),
            ["report_phishing", "delete"],
        ),
    },
    "bill_due": {
        "de": (
            "utility",
            ("rechnung", "kundenservice"),
            ("Ihre Rechnung für {lmonth}", "Zahlungserinnerung: {lamount} fällig", "Mahnung: offener Betrag"),
            (
                "Guten Tag {full},\n\nIhre Rechnung Nr. {invoice_no} über {lamount} ist am {ldate} fällig. Bitte überweisen Sie den Betrag rechtzeitig oder zahlen Sie online: {link}\n\n"
                "Mit freundlichen Grüßen\nIhr {brand} Kundenservice",
                "Sehr geehrte Kundin, sehr geehrter Kunde,\n\nleider ist Ihre Zahlung über {lamount} noch nicht bei uns eingegangen. Bitte begleichen Sie den offenen Betrag bis zum {ldate}, "
                "um Mahngebühren zu vermeiden.\n\n{brand}",
            ),
            ["pay_invoice", "set_payment_reminder"],
        ),
        "fr": (
            "utility",
            ("facture", "clients"),
            (
                "Votre facture {brand} est disponible",
                "Rappel : facture de {lamount} à régler",
                "Facture impayée",
            ),
            (
                "Bonjour {name},\n\nVotre facture n° {invoice_no} d'un montant de {lamount} est à régler avant le {ldate}.\n\nPayez en ligne : {link}\n\nCordialement,\n{brand}",
                "Bonjour,\n\nSauf erreur de notre part, votre facture de {lamount} arrivée à échéance reste impayée. Merci de la régler avant le {ldate} pour éviter la suspension du service.",
            ),
            ["pay_invoice", "set_payment_reminder"],
        ),
        "es": (
            "utility",
            ("facturas", "clientes"),
            ("Tu factura de {lmonth}", "Recordatorio de pago: {lamount}", "Factura pendiente de pago"),
            (
                "Hola {name}:\n\nTu factura n.º {invoice_no} por importe de {lamount} vence el {ldate}. Puedes pagarla en {link}\n\nGracias,\n{brand}",
            ),
            ["pay_invoice", "set_payment_reminder"],
        ),
        "pt": (
            "utility",
            ("faturas", "clientes"),
            ("A sua fatura de {lmonth}", "Lembrete: pagamento de {lamount}", "Fatura por pagar"),
            (
                "Olá {name},\n\nA sua fatura n.º {invoice_no} no valor de {lamount} tem data limite de pagamento a {ldate}. Pague por Multibanco ou em {link}\n\nObrigado,\n{brand}",
            ),
            ["pay_invoice", "set_payment_reminder"],
        ),
    },
    "fraud_alert": {
        "de": (
            "bank",
            ("sicherheit", "kartenservice"),
            (
                "Verdächtige Kartenzahlung",
                "Haben Sie diese Zahlung getätigt?",
                "Ihre Karte wurde vorsorglich gesperrt",
            ),
            (
                "Guten Tag {full},\n\nwir haben eine ungewöhnliche Zahlung über {lamount} mit Ihrer Karte (Endziffern {last4}) festgestellt. Bitte bestätigen oder "
                "widersprechen Sie der Zahlung in der {brand}-App.\n\nWir fragen Sie niemals nach PIN oder TAN.\n\nIhr {brand}-Sicherheitsteam",
            ),
            ["verify_transaction", "contact_support"],
        ),
        "fr": (
            "bank",
            ("alertes", "securite"),
            (
                "Opération inhabituelle sur votre carte",
                "Avez-vous effectué ce paiement ?",
                "Votre carte est temporairement bloquée",
            ),
            (
                "Bonjour {name},\n\nUn paiement de {lamount} chez {merchant} a été tenté avec votre carte se terminant par {last4}. Confirmez ou contestez cette opération "
                "dans l'application {brand}.\n\nNous ne vous demanderons jamais vos codes par e-mail.",
            ),
            ["verify_transaction", "contact_support"],
        ),
        "es": (
            "bank",
            ("alertas", "seguridad"),
            (
                "¿Has realizado esta compra?",
                "Operación sospechosa en tu tarjeta",
                "Tarjeta bloqueada temporalmente",
            ),
            (
                "Hola {name}:\n\nHemos detectado un cargo de {lamount} en {merchant} con tu tarjeta terminada en {last4}. Confirma si la reconoces desde la app de {brand}.\n\n"
                "Nunca te pediremos claves ni códigos por correo.",
            ),
            ["verify_transaction", "contact_support"],
        ),
        "pt": (
            "bank",
            ("alertas", "seguranca"),
            (
                "Reconhece este pagamento?",
                "Movimento suspeito no seu cartão",
                "Cartão bloqueado preventivamente",
            ),
            (
                "Olá {name},\n\nDetetámos um pagamento de {lamount} em {merchant} com o seu cartão terminado em {last4}. Confirme ou recuse o movimento na app {brand}.\n\n"
                "Nunca lhe pediremos códigos por email.",
            ),
            ["verify_transaction", "contact_support"],
        ),
    },
    "receipt": {
        "de": (
            "shop",
            ("bestellung", "service"),
            ("Ihre Bestellbestätigung", "Vielen Dank für Ihren Einkauf", "Zahlungsbestätigung"),
            (
                "Hallo {name},\n\nvielen Dank für Ihre Bestellung {order}. Wir haben Ihre Zahlung über {lamount} erhalten.\n\nArtikel: {product}\nGesamtbetrag: {lamount}\n\n{brand}",
            ),
            ["save_receipt", "request_refund"],
        ),
        "fr": (
            "shop",
            ("commandes", "service"),
            ("Confirmation de commande {order}", "Merci pour votre achat", "Votre reçu"),
            (
                "Bonjour {name},\n\nNous confirmons votre commande {order}. Montant payé : {lamount} par carte se terminant par {last4}.\n\nConservez ce courriel comme justificatif.\n\n{brand}",
            ),
            ["save_receipt", "request_refund"],
        ),
        "es": (
            "shop",
            ("pedidos", "info"),
            ("Confirmación de tu pedido {order}", "Gracias por tu compra", "Justificante de pago"),
            (
                "Hola {name}:\n\nHemos recibido tu pago de {lamount} para el pedido {order}.\n\nArtículo: {product}\nTotal pagado: {lamount}\n\nGracias por comprar en {brand}.",
            ),
            ["save_receipt", "request_refund"],
        ),
        "pt": (
            "shop",
            ("encomendas", "info"),
            ("Confirmação da sua encomenda", "Obrigado pela sua compra", "Recibo de pagamento"),
            (
                "Olá {name},\n\nRecebemos o seu pagamento de {lamount} referente à encomenda {order}.\n\nArtigo: {product}\nTotal pago: {lamount}\n\n{brand}",
            ),
            ["save_receipt", "request_refund"],
        ),
    },
    "shipping_update": {
        "de": (
            "carrier",
            ("paket", "benachrichtigung"),
            ("Ihr Paket ist unterwegs", "Zustellung heute", "Ihr Paket wurde zugestellt"),
            (
                "Hallo {name},\n\nIhr Paket {tracking} ist unterwegs und wird voraussichtlich am {ldate} zugestellt.\n\nSendungsverfolgung: {link}\n\nIhr {brand} Team",
                "Guten Tag,\n\nwir konnten Ihr Paket heute leider nicht zustellen. Sie können einen neuen Termin wählen oder eine Packstation angeben: {link}",
            ),
            ["track_package", "reschedule_delivery"],
        ),
        "fr": (
            "carrier",
            ("suivi", "notification"),
            ("Votre colis est en route", "Livraison prévue le {ldate}", "Votre colis a été livré"),
            (
                "Bonjour {name},\n\nVotre colis {tracking} a été expédié et sera livré le {ldate}.\n\nSuivre mon colis : {link}\n\n{brand}",
            ),
            ["track_package", "reschedule_delivery"],
        ),
        "es": (
            "carrier",
            ("envios", "notificaciones"),
            ("Tu paquete está en camino", "Entrega prevista: {ldate}", "Hemos intentado entregar tu paquete"),
            (
                "Hola {name}:\n\nTu envío {tracking} está en reparto y llegará el {ldate}.\n\nSigue tu envío: {link}\n\n{brand}",
            ),
            ["track_package", "reschedule_delivery"],
        ),
        "pt": (
            "carrier",
            ("envios", "notificacoes"),
            ("A sua encomenda está a caminho", "Entrega prevista para {ldate}", "Encomenda entregue"),
            (
                "Olá {name},\n\nA sua encomenda {tracking} foi expedida e será entregue a {ldate}.\n\nSiga a sua encomenda: {link}\n\n{brand}",
            ),
            ["track_package", "reschedule_delivery"],
        ),
    },
    "calendar_invite": {
        "de": (
            None,
            (),
            ("Einladung: Abstimmung am {ldate}", "Termin: Projektbesprechung", "Grillen bei uns am {ldate}?"),
            (
                "Hallo {name},\n\nich lade dich zu einer kurzen Abstimmung zum Projekt ein.\n\nWann: {ldate}, {ltime}-{ltime_end} Uhr\nWo: Teams\n\nBitte sag kurz zu oder ab.\n\nViele Grüße\n{pal}",
                "Hi {name},\n\nwir grillen am {ldate} ab {ltime} Uhr bei uns im Garten. Kommst du? Gib mir bis Donnerstag Bescheid!\n\n{pal}",
            ),
            ["rsvp", "add_to_calendar", "reply"],
        ),
        "fr": (
            None,
            (),
            (
                "Invitation : réunion de lancement le {ldate}",
                "Dîner samedi {ldate} ?",
                "Invitation : point d'équipe",
            ),
            (
                "Bonjour {name},\n\nJe t'invite à la réunion de lancement du projet.\n\nQuand : {ldate}, {ltime}-{ltime_end}\nOù : salle 3 / Teams\n\nMerci d'accepter ou de refuser l'invitation.\n\n{pal}",
                "Coucou {name} !\n\nOn organise un dîner à la maison le {ldate} à {ltime}. Tu es libre ? Dis-moi avant jeudi !\n\nBises,\n{pal}",
            ),
            ["rsvp", "add_to_calendar", "reply"],
        ),
        "es": (
            None,
            (),
            (
                "Invitación: reunión de coordinación el {ldate}",
                "¿Cena el {ldate}?",
                "Convocatoria: revisión trimestral",
            ),
            (
                "Hola {name}:\n\nTe envío una convocatoria para la reunión de coordinación.\n\nCuándo: {ldate}, {ltime}-{ltime_end}\nDónde: sala 2 / Teams\n\nPor favor, acepta o rechaza la invitación.\n\nUn saludo,\n{pal}",
                "¡Hola {name}!\n\nHacemos una cena en casa el {ldate} a las {ltime}. ¿Te apuntas? Confírmame antes del jueves.\n\nBesos,\n{pal}",
            ),
            ["rsvp", "add_to_calendar", "reply"],
        ),
        "pt": (
            None,
            (),
            (
                "Convite: reunião de equipa a {ldate}",
                "Jantar lá em casa a {ldate}?",
                "Convite: revisão do projeto",
            ),
            (
                "Olá {name},\n\nConvido-te para a reunião de equipa.\n\nQuando: {ldate}, {ltime}-{ltime_end}\nOnde: sala 1 / Teams\n\nPor favor aceita ou recusa o convite.\n\nObrigado,\n{pal}",
            ),
            ["rsvp", "add_to_calendar", "reply"],
        ),
    },
    "travel": {
        "de": (
            "travel",
            ("buchung", "service"),
            (
                "Ihre Buchungsbestätigung {ref}",
                "Online-Check-in jetzt möglich",
                "Gleisänderung / Verspätung Ihrer Verbindung",
            ),
            (
                "Hallo {name},\n\nvielen Dank für Ihre Buchung. Ihre Reise nach {dest} am {ldate} um {ltime} Uhr ist bestätigt.\n\nBuchungscode: {ref}\n\nReise verwalten: {link}\n\n{brand}",
                "Guten Tag,\n\nder Online-Check-in für Ihren Flug nach {dest} am {ldate} ist jetzt geöffnet: {link}",
            ),
            ["view_itinerary", "check_in"],
        ),
        "fr": (
            "travel",
            ("reservation", "infos"),
            (
                "Confirmation de votre réservation {ref}",
                "Changement de porte - vol pour {dest}",
                "Enregistrement en ligne ouvert",
            ),
            (
                "Bonjour {name},\n\nVotre voyage pour {dest} le {ldate} à {ltime} est confirmé.\n\nRéférence de réservation : {ref}\nGérer ma réservation : {link}\n\n{brand}",
                "Bonjour,\n\nVotre vol pour {dest} du {ldate} partira de la porte {gate}. Nouvelle heure d'embarquement : {ltime}.",
            ),
            ["view_itinerary", "check_in"],
        ),
        "es": (
            "travel",
            ("reservas", "info"),
            (
                "Confirmación de tu reserva {ref}",
                "Ya puedes facturar tu vuelo",
                "Cambio en tu viaje a {dest}",
            ),
            (
                "Hola {name}:\n\nTu viaje a {dest} el {ldate} a las {ltime} está confirmado.\n\nLocalizador: {ref}\nGestiona tu reserva: {link}\n\n{brand}",
            ),
            ["view_itinerary", "check_in"],
        ),
        "pt": (
            "travel",
            ("reservas", "info"),
            ("Confirmação da sua reserva {ref}", "Check-in online disponível", "Alteração à sua viagem"),
            (
                "Olá {name},\n\nA sua viagem para {dest} a {ldate} às {ltime} está confirmada.\n\nCódigo de reserva: {ref}\nGerir reserva: {link}\n\n{brand}",
            ),
            ["view_itinerary", "check_in"],
        ),
    },
    "appointment": {
        "de": (
            "local",
            ("termine", "praxis"),
            (
                "Terminbestätigung für den {ldate}",
                "Erinnerung an Ihren Termin",
                "Ihr Termin wurde verschoben",
            ),
            (
                "Guten Tag {full},\n\nhiermit bestätigen wir Ihren Termin am {ldate} um {ltime} Uhr.\n\nBitte sagen Sie mindestens 24 Stunden vorher ab, falls Sie verhindert sind.\n\n{brand}",
            ),
            ["confirm_appointment", "reschedule_appointment"],
        ),
        "fr": (
            "local",
            ("rdv", "cabinet"),
            (
                "Confirmation de votre rendez-vous",
                "Rappel : rendez-vous le {ldate}",
                "Votre rendez-vous a été déplacé",
            ),
            (
                "Bonjour {name},\n\nVotre rendez-vous est confirmé le {ldate} à {ltime}.\n\nEn cas d'empêchement, merci de prévenir au moins 24 h à l'avance.\n\n{brand}",
            ),
            ["confirm_appointment", "reschedule_appointment"],
        ),
        "es": (
            "local",
            ("citas", "clinica"),
            ("Confirmación de tu cita", "Recordatorio: cita el {ldate}", "Tu cita ha cambiado"),
            (
                "Hola {name}:\n\nTe recordamos tu cita el {ldate} a las {ltime}. Responde SÍ para confirmar o llámanos para cambiarla.\n\n{brand}",
            ),
            ["confirm_appointment", "reschedule_appointment"],
        ),
        "pt": (
            "local",
            ("marcacoes", "clinica"),
            ("Confirmação da sua consulta", "Lembrete: consulta a {ldate}", "A sua marcação foi alterada"),
            (
                "Olá {name},\n\nA sua consulta está marcada para {ldate} às {ltime}. Por favor confirme a sua presença respondendo a este email.\n\n{brand}",
            ),
            ["confirm_appointment", "reschedule_appointment"],
        ),
    },
    "work": {
        "de": (
            None,
            (),
            ("Kurze Frage zum Angebot", "Entwurf zur Durchsicht", "Stand Projekt {project}"),
            (
                "Hallo {name},\n\nkannst du dir bitte den Entwurf für das Projekt {project} ansehen und mir bis Freitag Feedback geben? Das Dokument liegt im Teams-Ordner.\n\nDanke und viele Grüße\n{pal}",
            ),
            ["reply", "save_document"],
        ),
        "fr": (
            None,
            (),
            ("Question rapide sur le devis", "Document à relire", "Point sur le projet {project}"),
            (
                "Bonjour {name},\n\nPeux-tu relire le document pour le projet {project} et me faire un retour d'ici vendredi ? Tout est dans le dossier partagé.\n\nMerci,\n{pal}",
            ),
            ["reply", "save_document"],
        ),
        "es": (
            None,
            (),
            (
                "Entrega de informes trimestrales",
                "Duda sobre el presupuesto",
                "Estado del proyecto {project}",
            ),
            (
                "Hola {name}:\n\n¿Puedes revisar el informe del proyecto {project} y enviarme tus comentarios antes del viernes? Está en la carpeta compartida.\n\nGracias,\n{pal}",
            ),
            ["reply", "save_document"],
        ),
        "pt": (
            None,
            (),
            ("Pedido de revisão do relatório", "Ponto de situação {project}", "Dúvida sobre o orçamento"),
            (
                "Olá {name},\n\nPodes rever o relatório do projeto {project} e enviar-me comentários até sexta-feira? Está na pasta partilhada.\n\nObrigado,\n{pal}",
            ),
            ["reply", "save_document"],
        ),
    },
    "personal": {
        "de": (
            None,
            (),
            ("Lange nichts gehört!", "Fotos vom Wochenende", "Neuigkeiten"),
            (
                "Hallo {name}!\n\nWie geht's dir? Hier ist alles gut, wir sind endlich umgezogen. Ich schicke dir ein paar Fotos vom Wochenende.\n\nLiebe Grüße\n{pal}",
            ),
            ["reply", "read_later"],
        ),
        "fr": (
            None,
            (),
            ("Des nouvelles !", "Les photos du week-end", "Ça fait longtemps"),
            (
                "Coucou {name} !\n\nComment vas-tu ? Ici tout va bien, les enfants grandissent trop vite. Je t'envoie les photos des vacances.\n\nGros bisous,\n{pal}",
            ),
            ["reply", "read_later"],
        ),
        "es": (
            None,
            (),
            ("¿Qué tal?", "Fotos del finde", "¡Cuánto tiempo!"),
            (
                "¡Hola {name}!\n\n¿Cómo estás? Hace mucho que no hablamos. Te mando las fotos del fin de semana, salieron genial.\n\nUn abrazo,\n{pal}",
            ),
            ["reply", "read_later"],
        ),
        "pt": (
            None,
            (),
            ("Novidades!", "Fotos do fim de semana", "Há quanto tempo!"),
            (
                "Olá {name}!\n\nComo estás? Por aqui está tudo bem. Envio-te umas fotos das férias, ficaram ótimas.\n\nBeijinhos,\n{pal}",
            ),
            ["reply", "read_later"],
        ),
    },
    "financial_statement": {
        "de": (
            "bank",
            ("postfach", "service"),
            (
                "Ihr Kontoauszug für {lmonth} ist verfügbar",
                "Neue Dokumente in Ihrem Postfach",
                "Ihre Entgeltabrechnung {lmonth}",
            ),
            (
                "Guten Tag {full},\n\nin Ihrem Online-Postfach liegt ein neuer Kontoauszug für {lmonth} bereit. Es ist keine Aktion erforderlich.\n\nZum Postfach: {link}\n\n{brand}",
            ),
            ["view_statement", "save_document"],
        ),
        "fr": (
            "bank",
            ("documents", "service"),
            (
                "Votre relevé de compte de {lmonth} est disponible",
                "Nouveau document dans votre espace",
                "Votre bulletin de paie",
            ),
            (
                "Bonjour {name},\n\nVotre relevé de compte du mois de {lmonth} est disponible dans votre espace client. Aucune action n'est requise.\n\nConsulter : {link}\n\n{brand}",
            ),
            ["view_statement", "save_document"],
        ),
        "es": (
            "bank",
            ("documentos", "avisos"),
            (
                "Tu extracto de {lmonth} ya está disponible",
                "Nuevo documento: certificado fiscal",
                "Tu nómina de {lmonth}",
            ),
            (
                "Hola {name}:\n\nYa puedes consultar tu extracto de {lmonth} en la banca online. No tienes que hacer nada.\n\nVer extracto: {link}\n\n{brand}",
            ),
            ["view_statement", "save_document"],
        ),
        "pt": (
            "bank",
            ("documentos", "avisos"),
            (
                "O seu extrato de {lmonth} está disponível",
                "Novo documento disponível",
                "O seu recibo de vencimento",
            ),
            (
                "Olá {name},\n\nO seu extrato de {lmonth} já está disponível no homebanking. Não é necessária qualquer ação.\n\nConsultar: {link}\n\n{brand}",
            ),
            ["view_statement", "save_document"],
        ),
    },
    "account_update": {
        "de": (
            "service",
            ("info", "no-reply"),
            (
                "Änderung unserer Nutzungsbedingungen",
                "Aktualisierung der Datenschutzerklärung",
                "Ihr Tarif ändert sich",
            ),
            (
                "Guten Tag,\n\nzum {ldate} aktualisieren wir unsere Allgemeinen Geschäftsbedingungen. Sie müssen nichts tun; die neuen Bedingungen finden Sie unter {link}.\n\n{brand}",
            ),
            ["review_account", "save_document"],
        ),
        "fr": (
            "service",
            ("info", "no-reply"),
            (
                "Mise à jour de nos conditions générales",
                "Évolution de votre forfait",
                "Votre export de données est prêt",
            ),
            (
                "Bonjour,\n\nNos conditions générales d'utilisation évoluent à compter du {ldate}. Aucune action n'est nécessaire de votre part. Consultez-les ici : {link}\n\n{brand}",
            ),
            ["review_account", "save_document"],
        ),
        "es": (
            "service",
            ("info", "no-reply"),
            ("Actualización de nuestras condiciones", "Cambios en tu tarifa", "Tu copia de datos está lista"),
            (
                "Hola:\n\nA partir del {ldate} actualizamos nuestras condiciones de uso y la política de privacidad. No tienes que hacer nada. Puedes consultarlas en {link}\n\n{brand}",
            ),
            ["review_account", "save_document"],
        ),
        "pt": (
            "service",
            ("info", "no-reply"),
            (
                "Atualização dos nossos Termos de Utilização",
                "Alteração ao seu tarifário",
                "A sua subscrição foi renovada",
            ),
            (
                "Olá,\n\nA partir de {ldate} vamos atualizar os nossos Termos de Utilização e a Política de Privacidade. Não precisa de fazer nada. Consulte-os em {link}\n\n{brand}",
            ),
            ["review_account", "save_document"],
        ),
    },
    "school_family": {
        "de": (
            "school",
            ("sekretariat", "info"),
            ("Elternabend am {ldate}", "Einverständniserklärung Ausflug", "Schule geschlossen am {ldate}"),
            (
                "Liebe Eltern,\n\nam {ldate} fährt die Klasse 3b in den Zoo. Bitte unterschreiben Sie die Einverständniserklärung und geben Sie sie bis Freitag mit.\n\nViele Grüße\n{teacher}",
            ),
            ["sign_form", "reply"],
        ),
        "fr": (
            "school",
            ("secretariat", "ecole"),
            (
                "Sortie scolaire – autorisation à signer",
                "Réunion parents-professeurs le {ldate}",
                "Fermeture de l'école le {ldate}",
            ),
            (
                "Chers parents,\n\nUne sortie au musée est prévue le {ldate}. Merci de signer l'autorisation parentale et de la rendre avant vendredi.\n\nCordialement,\n{teacher}",
            ),
            ["sign_form", "reply"],
        ),
        "es": (
            "school",
            ("secretaria", "colegio"),
            (
                "Autorización para la excursión",
                "Reunión de padres el {ldate}",
                "El colegio cerrará el {ldate}",
            ),
            (
                "Estimadas familias:\n\nEl {ldate} haremos una excursión al acuario. Por favor, firmen la autorización y devuélvanla antes del viernes.\n\nUn saludo,\n{teacher}",
            ),
            ["sign_form", "reply"],
        ),
        "pt": (
            "school",
            ("secretaria", "escola"),
            ("Autorização para a visita de estudo", "Reunião de pais a {ldate}", "Escola fechada a {ldate}"),
            (
                "Caros pais,\n\nNo dia {ldate} vamos fazer uma visita de estudo ao Oceanário. Por favor assinem a autorização e devolvam-na até sexta-feira.\n\nCumprimentos,\n{teacher}",
            ),
            ["sign_form", "reply"],
        ),
    },
    "social_notification": {
        "de": (
            "social",
            ("benachrichtigung", "no-reply"),
            ("{pal} folgt dir jetzt", "{pal} hat deinen Beitrag kommentiert", "Neue Kontaktanfrage"),
            (
                "{pal_full} folgt dir jetzt auf {brand}.\n\nProfil ansehen: {link}\n\nBenachrichtigungen verwalten oder abbestellen: {unsub}",
            ),
            ["view_post", "unsubscribe"],
        ),
        "fr": (
            "social",
            ("notification", "no-reply"),
            ("{pal} a commenté votre publication", "{pal} vous a mentionné", "Nouvelle demande de contact"),
            (
                "{pal_full} a commenté votre publication : « Bravo, superbe photo ! »\n\nVoir le commentaire : {link}\n\nSe désabonner de ces notifications : {unsub}",
            ),
            ["view_post", "unsubscribe"],
        ),
        "es": (
            "social",
            ("notificaciones", "no-reply"),
            (
                "{pal} ha comentado tu publicación",
                "{pal} te ha mencionado",
                "Tienes una nueva solicitud de amistad",
            ),
            (
                "{pal_full} ha comentado tu publicación: «¡Qué pasada de foto!»\n\nVer comentario: {link}\n\nDarse de baja de estas notificaciones: {unsub}",
            ),
            ["view_post", "unsubscribe"],
        ),
        "pt": (
            "social",
            ("notificacoes", "no-reply"),
            ("{pal} começou a seguir-te", "{pal} comentou a tua publicação", "Novo pedido de amizade"),
            (
                "{pal_full} comentou a tua publicação: «Que foto linda!»\n\nVer comentário: {link}\n\nCancelar estas notificações: {unsub}",
            ),
            ["view_post", "unsubscribe"],
        ),
    },
    "promotion": {
        "de": (
            "shop",
            ("newsletter", "angebote"),
            ("Nur heute: {pct}% Rabatt", "Sale: bis zu {pct}% auf alles", "Ihr Gutscheincode: {promo_code}"),
            (
                "Hallo {name},\n\nnur für kurze Zeit: {pct}% Rabatt auf ausgewählte Artikel mit dem Code {promo_code}.\n\nJetzt shoppen: {link}\n\nAbmelden: {unsub}",
            ),
            ["view_offer", "unsubscribe"],
        ),
        "fr": (
            "shop",
            ("newsletter", "offres"),
            ("Soldes : jusqu'à -{pct} %", "Livraison offerte ce week-end", "Votre code promo : {promo_code}"),
            (
                "Bonjour {name},\n\nProfitez de -{pct} % sur une sélection d'articles avec le code {promo_code}, jusqu'au {ldate}.\n\nJ'en profite : {link}\n\nSe désinscrire : {unsub}",
            ),
            ["view_offer", "unsubscribe"],
        ),
        "es": (
            "shop",
            ("news", "ofertas"),
            (
                "¡Rebajas! Hasta un {pct}% de descuento",
                "Solo hoy: envío gratis",
                "Tu código de descuento: {promo_code}",
            ),
            (
                "Hola {name}:\n\n¡Empiezan las rebajas! Hasta un {pct}% de descuento en toda la colección con el código {promo_code}.\n\nCompra ahora: {link}\n\nDarse de baja: {unsub}",
            ),
            ["view_offer", "unsubscribe"],
        ),
        "pt": (
            "shop",
            ("news", "promocoes"),
            ("Saldos: até {pct}% de desconto", "Só hoje: portes grátis", "O seu código de desconto"),
            (
                "Olá {name},\n\nAproveite até {pct}% de desconto em toda a loja com o código {promo_code}. Válido até {ldate}.\n\nComprar agora: {link}\n\nCancelar subscrição: {unsub}",
            ),
            ["view_offer", "unsubscribe"],
        ),
    },
    "newsletter": {
        "de": (
            "news",
            ("newsletter", "redaktion"),
            ("Der Wochenrückblick", "Unser Newsletter im {lmonth}", "Lesenswert: Stadt, Rad und Klima"),
            (
                "Liebe Leserinnen und Leser,\n\ndiese Woche schauen wir auf die neuen Radwege in der Innenstadt, ein Interview mit einer Stadtplanerin und drei Buchtipps.\n\n"
                "Weiterlesen: {link}\n\nNewsletter abbestellen: {unsub}",
            ),
            ["read_later", "unsubscribe"],
        ),
        "fr": (
            "news",
            ("lettre", "redaction"),
            ("La Lettre du mois – {lmonth}", "Notre sélection de la semaine", "À lire ce week-end"),
            (
                "Bonjour,\n\nAu sommaire cette semaine : un reportage sur les jardins partagés, une recette de saison et le portrait d'une libraire de quartier.\n\n"
                "Lire la lettre : {link}\n\nSe désinscrire : {unsub}",
            ),
            ["read_later", "unsubscribe"],
        ),
        "es": (
            "news",
            ("boletin", "redaccion"),
            ("El boletín de la semana", "Lo más leído de {lmonth}", "Nuestra selección del domingo"),
            (
                "Hola:\n\nEsta semana hablamos de la subida del alquiler, entrevistamos a una investigadora del sueño y te dejamos tres recomendaciones de lectura.\n\n"
                "Leer más: {link}\n\nDarse de baja: {unsub}",
            ),
            ["read_later", "unsubscribe"],
        ),
        "pt": (
            "news",
            ("newsletter", "redacao"),
            ("A newsletter da semana", "O melhor de {lmonth}", "Leituras para o fim de semana"),
            (
                "Olá,\n\nEsta semana escrevemos sobre o mercado da habitação, entrevistámos um cientista do clima e deixamos-lhe três sugestões de leitura.\n\n"
                "Ler mais: {link}\n\nCancelar subscrição: {unsub}",
            ),
            ["read_later", "unsubscribe"],
        ),
    },
    "loyalty_rewards": {
        "de": (
            "shop",
            ("bonusprogramm", "service"),
            (
                "Ihr Punktestand: {points} Punkte",
                "Ihre Punkte verfallen am {ldate}",
                "Willkommen im Gold-Status",
            ),
            (
                "Hallo {name},\n\nSie haben aktuell {points} Punkte in Ihrem Bonusprogramm. {points_exp} Punkte verfallen am {ldate} - lösen Sie sie jetzt ein: {link}\n\n{brand}",
            ),
            ["view_offer", "unsubscribe"],
        ),
        "fr": (
            "shop",
            ("fidelite", "club"),
            ("Votre solde : {points} points", "Vos points expirent le {ldate}", "Bienvenue au statut Or"),
            (
                "Bonjour {name},\n\nVous avez {points} points sur votre carte de fidélité. {points_exp} points expirent le {ldate} : utilisez-les ici {link}\n\n{brand}",
            ),
            ["view_offer", "unsubscribe"],
        ),
        "es": (
            "shop",
            ("club", "puntos"),
            ("Tienes {points} puntos", "Tus puntos caducan el {ldate}", "Ya eres socio Oro"),
            (
                "Hola {name}:\n\nTienes {points} puntos acumulados. {points_exp} puntos caducan el {ldate}: canjéalos aquí {link}\n\n{brand}",
            ),
            ["view_offer", "unsubscribe"],
        ),
        "pt": (
            "shop",
            ("cartao", "pontos"),
            ("Tem {points} pontos", "Os seus pontos expiram a {ldate}", "Bem-vindo ao nível Ouro"),
            (
                "Olá {name},\n\nTem {points} pontos acumulados no seu cartão. {points_exp} pontos expiram a {ldate}: troque-os aqui {link}\n\n{brand}",
            ),
            ["view_offer", "unsubscribe"],
        ),
    },
    "event_marketing": {
        "de": (
            "shop",
            ("events", "newsletter"),
            (
                "Live-Webinar am {ldate}: Jetzt anmelden",
                "Einladung zum Konzert am {ldate}",
                "Workshop im Store",
            ),
            (
                "Hallo {name},\n\nam {ldate} um {ltime} Uhr zeigen unsere Expertinnen in einem kostenlosen Webinar, wie Sie Ihre Finanzen besser planen.\n\n"
                "Jetzt Platz sichern: {link}\n\nAbmelden: {unsub}",
            ),
            ["register_event", "unsubscribe"],
        ),
        "fr": (
            "shop",
            ("evenements", "newsletter"),
            (
                "Atelier gratuit en magasin le {ldate}",
                "Concert : billets en vente",
                "Webinaire : inscrivez-vous",
            ),
            (
                "Bonjour {name},\n\nRejoignez-nous le {ldate} à {ltime} pour un atelier gratuit en magasin. Places limitées !\n\nJe m'inscris : {link}\n\nSe désinscrire : {unsub}",
            ),
            ["register_event", "unsubscribe"],
        ),
        "es": (
            "shop",
            ("eventos", "news"),
            (
                "Este sábado: quedada y taller",
                "Entradas a la venta: concierto el {ldate}",
                "Webinar gratuito: inscríbete",
            ),
            (
                "Hola {name}:\n\nEl {ldate} a las {ltime} organizamos un taller gratuito en nuestra tienda. ¡Plazas limitadas!\n\nReserva tu plaza: {link}\n\nDarse de baja: {unsub}",
            ),
            ["register_event", "unsubscribe"],
        ),
        "pt": (
            "shop",
            ("eventos", "news"),
            (
                "Workshop gratuito na loja a {ldate}",
                "Bilhetes à venda: concerto a {ldate}",
                "Webinar: inscreva-se",
            ),
            (
                "Olá {name},\n\nNo dia {ldate} às {ltime} organizamos um workshop gratuito na nossa loja. Lugares limitados!\n\nInscreva-se: {link}\n\nCancelar subscrição: {unsub}",
            ),
            ["register_event", "unsubscribe"],
        ),
    },
    "survey_request": {
        "de": (
            "shop",
            ("feedback", "umfrage"),
            ("Wie zufrieden waren Sie?", "Ihre Meinung ist uns wichtig", "Bewerten Sie Ihren Einkauf"),
            (
                "Hallo {name},\n\nwie zufrieden waren Sie mit Ihrem letzten Einkauf bei {brand}? Die Umfrage dauert nur 2 Minuten: {link}\n\nVielen Dank!\n\nAbmelden: {unsub}",
            ),
            ["take_survey", "unsubscribe"],
        ),
        "fr": (
            "shop",
            ("avis", "enquete"),
            ("Votre avis nous intéresse", "Notez votre achat", "Comment s'est passée votre commande ?"),
            (
                "Bonjour {name},\n\nComment s'est passée votre dernière commande chez {brand} ? Répondez à notre questionnaire de 2 minutes : {link}\n\nMerci !",
            ),
            ["take_survey", "unsubscribe"],
        ),
        "es": (
            "shop",
            ("opinion", "encuestas"),
            ("¿Qué tal tu compra?", "Tu opinión nos importa", "Valora tu pedido"),
            (
                "Hola {name}:\n\n¿Qué tal fue tu última compra en {brand}? Responde a nuestra encuesta de 2 minutos: {link}\n\n¡Gracias!",
            ),
            ["take_survey", "unsubscribe"],
        ),
        "pt": (
            "shop",
            ("opiniao", "inquerito"),
            ("A sua opinião conta", "Avalie a sua compra", "Como correu a sua encomenda?"),
            (
                "Olá {name},\n\nComo correu a sua última compra na {brand}? Responda ao nosso inquérito de 2 minutos: {link}\n\nObrigado!",
            ),
            ["take_survey", "unsubscribe"],
        ),
    },
}

_MONTHS = {
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
    "pt": (
        "janeiro",
        "fevereiro",
        "março",
        "abril",
        "maio",
        "junho",
        "julho",
        "agosto",
        "setembro",
        "outubro",
        "novembro",
        "dezembro",
    ),
}
_LOCAL = {
    "de": (
        ("Praxis Dr. Schmidt", "praxis-schmidt.de"),
        ("Autohaus Becker", "autohaus-becker.de"),
        ("Friseur Haarmonie", "haarmonie.de"),
    ),
    "fr": (
        ("Cabinet dentaire Lumière", "dentiste-lumiere.fr"),
        ("Garage du Centre", "garageducentre.fr"),
        ("Centre médical Voltaire", "cm-voltaire.fr"),
    ),
    "es": (
        ("Clínica Dental Sonrisa", "clinicasonrisa.es"),
        ("Taller Hermanos Ruiz", "tallerruiz.es"),
        ("Centro Médico Salud", "centromedicosalud.es"),
    ),
    "pt": (
        ("Clínica Dentária Sorriso", "clinicasorriso.pt"),
        ("Oficina Auto Lima", "autolima.pt"),
        ("Centro Clínico Lisboa", "ccl.pt"),
    ),
}
_SCHOOLS = {
    "de": ("Grundschule am Park", "gs-ampark.de"),
    "fr": ("École Jules Ferry", "ecole-julesferry.fr"),
    "es": ("Colegio San José", "colegiosanjose.es"),
    "pt": ("Escola Básica do Parque", "ebparque.pt"),
}
_NEWS = {
    "de": ("Die Wochenpost", "wochenpost.de"),
    "fr": ("La Lettre du Quartier", "lettreduquartier.fr"),
    "es": ("El Boletín Urbano", "boletinurbano.es"),
    "pt": ("A Gazeta Semanal", "gazetasemanal.pt"),
}
_SOCIAL = (
    ("LinkedIn", "linkedin.com"),
    ("Instagram", "mail.instagram.com"),
    ("Facebook", "facebookmail.com"),
)
_TEACHERS = {
    "de": ("Frau Weber", "Herr Krause"),
    "fr": ("Mme Lefèvre", "M. Girard"),
    "es": ("Sra. Romero", "Sr. Navarro"),
    "pt": ("Prof.ª Costa", "Prof. Almeida"),
}
_DESTS = (
    "Berlin",
    "Paris",
    "Madrid",
    "Lisboa",
    "Nice",
    "Porto",
    "Sevilla",
    "München",
    "Lyon",
    "Barcelona",
    "Faro",
)


def _money(value: float, lang: str) -> str:
    text = f"{value:,.2f}"
    if lang == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    else:
        text = text.replace(",", "X").replace(".", ",").replace("X", ".")
    return f"{text} €"


def render_foreign(f: Fields, category: str, lang: str | None = None) -> Draft:
    """Render ``category`` in German, French, Spanish or Portuguese (random if ``lang`` is None)."""
    lang = lang or f.pick(LANGS)
    kind, locals_, subjects, bodies, actions = _T[category][lang]
    d = f.day(2, 20)
    f["ldate"] = (
        f"{d.day:02d}.{d.month:02d}.{d.year}" if lang == "de" else f"{d.day:02d}/{d.month:02d}/{d.year}"
    )
    hour, minute = f.r.randint(8, 19), f.pick((0, 15, 30, 45))
    f["ltime"] = f"{hour:02d}:{minute:02d}"
    f["ltime_end"] = f"{hour + 1:02d}:{minute:02d}"
    f["lmonth"] = _MONTHS[lang][(f.today.month - 2) % 12]
    f["lamount"] = _money(f.r.uniform(9, 480), lang)
    f["name"] = f.pick(_NAMES[lang])
    f["last"] = f.pick(_SURNAMES[lang])
    pal, pal_last = f.pick(_NAMES[lang]), f.pick(_SURNAMES[lang])
    f["pal"], f["pal_full"] = pal, f"{pal} {pal_last}"
    f["project"] = f.pick(("Atlas", "Nordlicht", "Horizon", "Delta", "Fénix", "Aurora"))
    f["merchant"] = f.pick(("AMAZON EU", "ZALANDO SE", "APPLE.COM/BILL", "BOLT.EU", "AIRBNB"))
    f["dest"] = f.pick(_DESTS)
    f["gate"] = f"{f.pick('ABCDK')}{f.r.randint(1, 40)}"
    f["tracking"] = f"{f.pick(('JJD', 'CB', 'PQ', 'RR'))}{f.digits(12)}"
    f["teacher"] = f.pick(_TEACHERS[lang])
    f["points"] = f"{f.r.randint(300, 9000):,}".replace(",", ".")
    f["points_exp"] = str(f.r.randint(50, 300))
    f["cur"] = "€"
    if kind is None:
        f.set_brand(f"{pal} {pal_last}", "")
        sender = f"{pal} {pal_last} <{personal_address(f, pal, pal_last)}>"
    elif kind == "fake":
        bad, brand = _FAKE[lang]
        f.set_brand(brand, bad)
        f["bad"] = (
            f"https://{bad}/{f.pick(('login', 'verificar', 'pagamento', 'validation'))}?id={f.code(8).lower()}"
        )
        sender = f"{brand} <{f.pick(locals_)}@{bad}>"
    else:
        if kind == "local":
            brand, domain = f.pick(_LOCAL[lang])
        elif kind == "school":
            brand, domain = _SCHOOLS[lang]
        elif kind == "news":
            brand, domain = _NEWS[lang]
        elif kind == "social":
            brand, domain = f.pick(_SOCIAL)
        else:
            brand, domain = f.pick(_BRANDS[kind][lang])
        f.set_brand(brand, domain)
        sender = f"{brand} <{f.pick(locals_)}@{domain}>"
        f["link"] = f.link(
            f.pick(("konto", "compte", "cuenta", "conta", "app", "mein-bereich", "espace-client"))
            if kind not in ("carrier", "shop", "news")
            else f.pick(("sendung", "suivi", "seguimiento", "c", "p", "promo"))
        )
    if "link" not in f:
        f["link"] = f"https://{f['domain'] or 'example.org'}/{f.code(6).lower()}"
    return Draft(sender, f.one(subjects), f.one(bodies), list(actions))
