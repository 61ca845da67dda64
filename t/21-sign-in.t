#!/usr/bin/perl

# Every way Exchange signs users in, on farms that send their servers'
# names and on farms that strip them: a broken EXCH2 is taken out within
# its first failures, users see no failure where the request can be sent
# elsewhere, and the healed EXCH2 comes back within its ejection time and
# a few requests.  The back ends sign users in by forms (cadata), AD FS
# (FedAuth), OpenID Connect, Basic and Bearer (EH::Client::credentials).

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;

my $farm = farm(tls => 1);

my @BE = qw(X-BEServer X-CalculatedBETarget X-DiagInfo);

# how users sign in, the request they make, and how EXCH2 breaks for it
my @cases = (
    { auth => 'forms',  method => 'GET',  path => '/owa/', fault => 'seed' },
    { auth => 'adfs',   method => 'GET',  path => '/owa/', fault => 'seed' },
    { auth => 'oidc',   method => 'GET',  path => '/owa/', fault => 'seed' },
    { auth => 'basic',  method => 'GET',  path => '/owa/', fault => 'seed' },
    { auth => 'basic',  method => 'POST', path => '/EWS/Exchange.asmx',
      fault => 'ews-broken', op => 'GetFolder' },
    { auth => 'basic',  method => 'POST', path => '/EWS/Exchange.asmx',
      fault => 'ews-broken', op => 'CreateItem' },
    { auth => 'bearer', method => 'POST', path => '/EWS/Exchange.asmx',
      fault => 'bearer-broken', op => 'FindItem' },
);

# an EWS call: GetFolder and FindItem only read, CreateItem sends mail
sub ews_body {
    my ($op) = @_;
    return '<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap='
         . '"http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://'
         . 'schemas.microsoft.com/exchange/services/2006/messages"><soap:Body>'
         . "<m:$op><m:ItemShape/></m:$op></soap:Body></soap:Envelope>";
}

sub ask {
    my ($ng, $c, $user) = @_;
    my $r = $ng->request($c->{method} => $c->{path}, signed_in => $user,
        auth => $c->{auth},
        ($c->{method} eq 'POST'
         ? (body => ews_body($c->{op}), content_type => 'text/xml') : ()));
    return $r;
}

for my $strip ([], [ @BE ], [ @BE, 'X-FEServer' ]) {
    my $farm_kind = @$strip ? 'strips ' . join(' ', @$strip) : 'sends every header';

    for my $c (@cases) {
        my $what = "$c->{auth} $c->{method} $c->{path}"
                 . ($c->{op} ? " $c->{op}" : '') . ", farm $farm_kind";

        $farm->heal;
        $farm->strip(@$strip);
        $farm->clear_logs;

        my $ng = EH::Front::nginx($farm,
            upstream => 'exchange_health_eject time=2s;');
        $ng->start;

        # a working day: every user has been served before
        my @users = map { "$c->{auth}$_" } 1 .. 12;
        ask($ng, $c, $_) for @users;

        # EXCH2 breaks for this kind of sign-in
        $farm->server('EXCH2')->preset($c->{fault});
        # until it is out: after that its time could run out before the
        # phase ends, and a POST that is its trial would meet the fault
        my ($seen, $sent) = (0, 0);
        ROUND: for my $round (1 .. 3) {
            for my $u (@users) {
                my $r = ask($ng, $c, $u);
                $sent++;
                $seen++ if ($r->{status} // 0) != 200;
                last ROUND if EH::Front::changes($ng, 'ejected');
            }
        }
        my @ej = EH::Front::changes($ng, 'ejected');
        is scalar(@ej), 1, "$what: EXCH2 taken out" or diag $ng->error_log;
        is $ej[0]{addr}, $farm->server('EXCH2')->addr, "$what: ... EXCH2 only"
            if @ej;

        if ($c->{method} eq 'GET' || $c->{op} =~ /^(?:Get|Find)/) {
            # a POST that only reads is sent on as a GET is
            is $seen, 0, "$what: no user saw a failure ($sent requests)";
        }
        else {
            # a POST that writes is not sent twice: its first failures
            # reach users
            ok $seen <= 3, "$what: at most 3 failures seen before it went "
                         . "out ($seen of $sent)";
        }

        # healed: back within its ejection time and a few requests
        $farm->server('EXCH2')->heal;
        $farm->server('EXCH2')->strip(@$strip);
        select undef, undef, undef, 2.2;
        for my $i (1 .. 10) {
            last if EH::Front::changes($ng, 'readmitted');
            ask($ng, $c, $users[$i % @users]);
        }
        is scalar(EH::Front::changes($ng, 'readmitted')), 1,
            "$what: healed EXCH2 back within its ejection time and 10 requests"
            or diag join "\n", grep { /exchange_health/ } split /\n/, $ng->error_log;

        $farm->clear_logs;
        ask($ng, $c, $_) for @users[0 .. 5];
        ok $farm->server('EXCH2')->hits(path => '^/(?:owa|EWS)/') >= 1,
            "$what: EXCH2 serves users again";
        is scalar(EH::Front::changes($ng, 'farm-fault')), 0,
            "$what: no farm-wide fault";
        $ng->stop;
    }
}

$farm->strip();

done_testing;
