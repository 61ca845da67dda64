#!/usr/bin/perl

# Passive detection: each way Exchange delivers a server failure, replayed
# from a 3-server HTTPS farm where EXCH2 fails, ejects EXCH2 for that
# protocol only; later requests of that protocol go to EXCH1 and EXCH3,
# other protocols still reach EXCH2.  Retry is off here, so detection
# and ejection are seen alone.

# The users here make one request each and never opened OWA before, so
# the upstreams say voters=any: these tests are about what is found in
# answers, t/19-who-votes.t about who may vote.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;

my $farm = farm(tls => 1);

my @forms = (
    { name => 'errorFE redirect (the seed case)', rule => 'errorfe-redirect',
      preset => 'seed' },
    { name => 'errorFE page, English, 200', rule => 'errorfe-page',
      route => { capture => 'errorfe-page-en' } },
    { name => 'errorFE page, German', rule => 'errorfe-page',
      route => { capture => 'errorfe-page-de' } },
    { name => 'errorFE page, French', rule => 'errorfe-page',
      route => { capture => 'errorfe-page-fr' } },
    { name => 'errorFE page, gzip', rule => 'errorfe-page',
      route => { capture => 'errorfe-page-en', gzip => 1 } },
    { name => 'errorFE page, deflate', rule => 'errorfe-page',
      route => { capture => 'errorfe-page-de', deflate => 1 } },
    { name => 'errorFE page, chunked in 7-byte chunks', rule => 'errorfe-page',
      route => { capture => 'errorfe-page-en', chunked => 7 } },
    { name => 'errorFE page, gzip in 1-byte chunks', rule => 'errorfe-page',
      route => { capture => 'errorfe-page-fr', gzip => 1, chunked => 1 } },
    { name => 'errorFE page, marker split across reads', rule => 'errorfe-page',
      route => { capture => 'errorfe-page-en',
                 split => [ map { 650 + $_ * 9 } 0 .. 8 ] } },
    { name => 'errorFE page as a 500', rule => 'errorfe-page',
      route => { capture => 'errorfe-page-en', status => 500,
                 headers => { 'X-FEServer' => undef } } },
    { name => 'OWA service call 500 with X-FEServer', rule => 'fe500',
      path => '/owa/service.svc?action=GetFolder',
      route => { capture => 'owa-service-500' } },
    { name => 'OWA service call 500, chunked as captured', rule => 'fe500',
      path => '/owa/service.svc?action=FindItem',
      route => { capture => 'owa-service-500-chunked' } },
    { name => 'OWA service call 500, X-FEServer stripped', rule => 'exchange-500',
      path => '/owa/service.svc?action=GetFolder',
      route => { capture => 'owa-service-500',
                 headers => { 'X-FEServer' => undef } } },
    { name => 'ECP JSON error', rule => 'ecp-json', protocol => 'ecp',
      path => '/ecp/DDI/DDIService.svc/GetList',
      route => { capture => 'ecp-json-500',
                 headers => { 'X-FEServer' => undef } } },
    { name => 'ECP error header only', rule => 'ecp-error', protocol => 'ecp',
      path => '/ecp/DDI/DDIService.svc/GetList',
      route => { capture => 'ecp-json-500',
                 headers => { 'X-FEServer' => undef, 'jsonerror' => undef } } },
    { name => 'HTTP.SYS 503: the OWA application pool stopped',
      rule => 'httpsys-503',
      route => { raw => httpsys_503() } },
    { name => 'IIS 500.19, the custom page remote clients get',
      rule => 'iis-500',
      route => { raw => iis_500(custom => 1) } },
    { name => 'IIS 500.19, the detailed page', rule => 'iis-500',
      route => { raw => iis_500() } },
    { name => 'ECP ASP.NET server error page', rule => 'aspnet-error',
      protocol => 'ecp', path => '/ecp/',
      route => { capture => 'ecp-aspnet-error',
                 headers => { 'X-FEServer' => undef } } },
);

# What HTTP.SYS sends when the application pool behind a URL is stopped:
# its own page, Server: Microsoft-HTTPAPI/2.0, no Exchange header.
sub httpsys_503 {
    my $body = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>Service Unavailable</TITLE>\r\n<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n<BODY><h2>Service Unavailable</h2>\r\n<hr><p>HTTP Error 503. The service is unavailable.</p>\r\n</BODY></HTML>\r\n";
    return "HTTP/1.1 503 Service Unavailable\r\n"
         . "Content-Type: text/html; charset=us-ascii\r\n"
         . "Server: Microsoft-HTTPAPI/2.0\r\n"
         . "Date: Thu, 03 Dec 2026 10:00:00 GMT\r\n"
         . "Connection: close\r\n"
         . 'Content-Length: ' . length($body) . "\r\n\r\n" . $body;
}

# IIS's own 500 when the directory's web.config is broken (500.19): the
# custom page a remote client gets by default, or the detailed page when
# detailed errors are on.  No Exchange code ran: no X-FEServer.
sub iis_500 {
    my (%o) = @_;
    my $body = $o{custom}
        ? "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" "
          . "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n"
          . "<html xmlns=\"http://www.w3.org/1999/xhtml\">\r\n<head>\r\n"
          . "<title>500 - Internal server error.</title>\r\n</head>\r\n"
          . "<body>\r\n<div id=\"header\"><h1>Server Error</h1></div>\r\n"
          . "<div id=\"content\">\r\n <div class=\"content-container\"><fieldset>\r\n"
          . "  <h2>500 - Internal server error.</h2>\r\n"
          . "  <h3>There is a problem with the resource you are looking for, "
          . "and it cannot be displayed.</h3>\r\n </fieldset></div>\r\n</div>\r\n"
          . "</body>\r\n</html>\r\n"
        : "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" "
          . "\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n"
          . "<html xmlns=\"http://www.w3.org/1999/xhtml\">\r\n<head>\r\n"
          . "<title>IIS 10.0 Detailed Error - 500.19 - Internal Server Error</title>\r\n"
          . "</head>\r\n<body>\r\n<div id=\"content\">\r\n"
          . "<div class=\"content-container\">\r\n"
          . "  <h3>HTTP Error 500.19 - Internal Server Error</h3>\r\n"
          . "  <h4>The requested page cannot be accessed because the related "
          . "configuration data for the page is invalid.</h4>\r\n</div>\r\n"
          . "<div class=\"content-container\"><fieldset><h4>Detailed Error "
          . "Information:</h4>\r\n<table><tr><th>Config File</th><td>"
          . "\\\\?\\C:\\Program Files\\Microsoft\\Exchange Server\\V15\\"
          . "FrontEnd\\HttpProxy\\owa\\web.config</td></tr></table>\r\n"
          . "</fieldset></div>\r\n</div>\r\n</body>\r\n</html>\r\n";
    return "HTTP/1.1 500 Internal Server Error\r\n"
         . "Content-Type: text/html\r\n"
         . "Server: Microsoft-IIS/10.0\r\n"
         . "X-Powered-By: ASP.NET\r\n"
         . "Date: Thu, 03 Dec 2026 10:00:00 GMT\r\n"
         . "Connection: close\r\n"
         . 'Content-Length: ' . length($body) . "\r\n\r\n" . $body;
}

for my $f (@forms) {
    my $proto = $f->{protocol} // 'owa';
    my $path = $f->{path} // "/$proto/";
    (my $match = $path) =~ s/\?.*//;

    $farm->heal;
    $farm->clear_logs;

    if ($f->{preset}) {
        $farm->server('EXCH2')->preset($f->{preset});
    } else {
        $farm->server('EXCH2')->prepend({ path => '^' . quotemeta($match),
                                          signed_in => 1, %{ $f->{route} } });
    }

    my $ng = EH::Front::nginx($farm,
                              upstream => 'exchange_health_eject time=60s voters=any;',
                              location => 'exchange_health_retry off;');
    $ng->start;

    # users take turns; EXCH2 answers every third request until ejected
    my @seen;
    for my $i (1 .. 12) {
        my $r = $ng->request(GET => $path, signed_in => "user$i",
                             accept_encoding => 'gzip, deflate');
        push @seen, $r->header('X-FEServer') // '-';
    }

    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$f->{name}: one ejection logged";
    is $farm->name_of($ej[0]{addr}), 'EXCH2', "$f->{name}: EXCH2 ejected"
        or diag $ng->error_log;
    is $ej[0]{server}, $f->{route}{headers} || $f->{route}{raw} ? '-' : 'EXCH2',
        "$f->{name}: named by its X-FEServer when it sends one";
    is $ej[0]{protocol}, $proto, "$f->{name}: for $proto";
    is $ej[0]{rule}, $f->{rule}, "$f->{name}: by rule $f->{rule}";

    # after the ejection, EXCH2 gets no more of this protocol
    $farm->clear_logs;
    $ng->request(GET => $path, signed_in => "later$_") for 1 .. 9;
    is $farm->server('EXCH2')->hits(path => "^/$proto"), 0,
        "$f->{name}: no $proto request reaches EXCH2 after ejection";
    is $farm->total_hits(path => "^/$proto"), 9,
        "$f->{name}: all went to EXCH1 and EXCH3";

    # a server broken for one protocol keeps serving the others
    $farm->clear_logs;
    $ng->request(GET => '/EWS/Exchange.asmx', signed_in => "ews$_") for 1 .. 6;
    is $farm->server('EXCH2')->hits(path => '^/EWS/'), 2,
        "$f->{name}: EXCH2 still gets its share of EWS";

    $ng->stop;
}

done_testing;
