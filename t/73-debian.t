#!/usr/bin/perl

# docs/debian.md, step by step, on the installed package (tools/deb-smoke
# runs this with EH_PACKAGE=installed after "apt install ./...deb"):
# Debian's own nginx.conf (its sed line checked on a copy), the package's
# conf.d and site examples copied and enabled as the guide says, the
# module loaded through the package's modules-enabled link, passwords
# made with openssl.  Only what cannot exist here is changed (the
# servers' addresses, the listen ports, the certificates, the log and pid
# paths, a state file of its own), in a private copy of /etc/nginx.  In
# front of a simulated farm whose EXCH2 lost its Auth certificate:
# signed-in users get through, EXCH2 is ejected for OWA, the line is in
# the error log at warn, and the status page shows it.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Util ();
use JSON::PP ();
use MIME::Base64 qw(encode_base64);
use POSIX qw(WNOHANG);

plan skip_all => 'the installed package only (EH_PACKAGE=installed)'
    unless ($ENV{EH_PACKAGE} // '') eq 'installed';

my $pkg = 'libnginx-mod-http-exchange-health';
my $ex = "/usr/share/doc/$pkg/examples";
my $guide = slurp(EH::Util::repo_root() . '/docs/debian.md');

# ------------------------------------------------------------ 1. installed
ok -l '/etc/nginx/modules-enabled/50-mod-http-exchange-health.conf',
    'the module enabled by the package';
ok -f "$ex/conf.d/exchange-health.conf", "the conf.d example in $ex";
ok -f "$ex/sites-available/exchange", '... and the site';
is sprintf('%s %o', (getpwuid((stat '/var/lib/nginx/exchange-health')[4]))[0],
           (stat _)[2] & 07777), 'www-data 700', 'the state directory, www-data\'s';

# ------------------------------------------------------------ 2. log level
my $etc = run_dir() . '/etc-nginx';
mkdir $_ or die "$_: $!" for $etc, map { "$etc/$_" }
    qw(conf.d sites-available sites-enabled logs);
chmod 0711, run_dir(), $etc;     # the workers (www-data) read the passwords
my $conf = slurp('/etc/nginx/nginx.conf');
like $conf, qr{^error_log /var/log/nginx/error\.log;$}m,
    "Debian's nginx.conf logs at its default level, error";
# the guide's sed line sets warn for the probes' lines; nginx runs below
# with Debian's "error" all the same, so that the ejection's line at warn
# shows the site's own error_log at work
spew("$etc/sed-copy.conf", $conf);
my ($sed) = $guide =~ /^(sed -i '[^']+') \/etc\/nginx\/nginx\.conf$/m;
ok $sed, 'debian.md: the sed line';
system("$sed $etc/sed-copy.conf") == 0 or fail('the sed line runs');
like slurp("$etc/sed-copy.conf"), qr{^error_log /var/log/nginx/error\.log warn;$}m,
    '... sets warn in nginx.conf';

# the copy's paths: its own includes, logs and pid; the modules are the
# machine's, as the package enabled them
$conf =~ s{^(\s*include\s+)/etc/nginx/(conf\.d|sites-enabled)/}{$1$etc/$2/}mg;
$conf =~ s{/var/log/nginx/}{$etc/logs/}g;
$conf =~ s{^pid [^;]+;}{pid $etc/nginx.pid;}m;
like $conf, qr{^include /etc/nginx/modules-enabled/\*\.conf;$}m,
    'modules-enabled: the package\'s';
spew("$etc/nginx.conf", $conf);

# ------------------------------------------------------------ 3. examples
for my $step ("cp $ex/conf.d/exchange-health.conf $etc/conf.d/",
              "cp $ex/sites-available/exchange $etc/sites-available/",
              "ln -s ../sites-available/exchange $etc/sites-enabled/exchange") {
    is system($step), 0, $step;
}

# ------------------------------------------------------------ 4. made ours
my $ca = cert(cn => 'Contoso Test Root CA', is_ca => 1);
my $mail = cert(cn => 'mail.contoso.com', ca => $ca,
                san => ['mail.contoso.com', 'autodiscover.contoso.com', 'IP:127.0.0.1']);
my $farm = farm(tls => 1, backend => { cert => $mail });
$farm->server('EXCH2')->preset('seed');
my %port = (http => EH::Util::free_port(), https => EH::Util::free_port());
my $state = "/var/lib/nginx/exchange-health/t73-$$.state";
EH::Util::register_cleanup(sub { unlink $state });

for my $f ("$etc/conf.d/exchange-health.conf", "$etc/sites-available/exchange") {
    my $t = EH::Front::example_conf(text => slurp($f),
        ports => { %port, prefix => $etc }, cert => $mail, ca => $ca,
        servers => [ map { $farm->server("EXCH$_")->addr } 1 .. 3 ]);
    $t =~ s{^(\s*state=)\S+;}{$1$state;}m;
    $t =~ s{/etc/nginx/(exchange-(?:status|admin)\.htpasswd)}{$etc/$1}g;
    spew($f, $t);
}
like slurp("$etc/sites-available/exchange"),
    qr{^\s*error_log \Q$etc\E/logs/error\.log warn;$}m, 'the site logs at warn';
for my $who ([helpdesk => 'status'], [ops => 'admin']) {
    my $hash = `openssl passwd -apr1 secret-$who->[0]`;
    chomp $hash;
    like $hash, qr/^\$apr1\$/, "openssl passwd -apr1 for $who->[0]";
    spew("$etc/exchange-$who->[1].htpasswd", "$who->[0]:$hash\n");
}
system("chown root:www-data $etc/exchange-*.htpasswd; chmod 640 $etc/exchange-*.htpasswd");

# ------------------------------------------------------------ 5. start
my @nginx = ('/usr/sbin/nginx', '-c', "$etc/nginx.conf", '-e', "$etc/logs/stderr.log");
my $t = `@nginx -t 2>&1`;
is $?, 0, 'nginx -t: Debian\'s nginx.conf, the examples, the module' or diag $t;
my $pid = fork // die "fork: $!";
if (!$pid) {
    open STDOUT, '>', "$etc/logs/stdout.log";
    open STDERR, '>&', \*STDOUT;
    exec @nginx, '-g', 'daemon off;' or POSIX::_exit(127);
}
EH::Util::register_cleanup(sub {
    kill 'QUIT', $pid;
    EH::Util::wait_until(sub { waitpid($pid, WNOHANG) == $pid }, timeout => 10)
        or kill 'KILL', $pid;
});
ok wait_until(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port{https}",
                                          Timeout => 1) }, timeout => 10),
    'nginx listens' or diag slurp("$etc/logs/stdout.log");

sub req {
    my ($method, $path, %o) = @_;
    return EH::Client->request($method, $path, port => $port{https}, tls => 1,
                               host => 'mail.contoso.com', timeout => 10, %o);
}

# ------------------------------------------------------------ 6. the page
my $auth = [ Authorization => 'Basic ' . encode_base64('helpdesk:secret-helpdesk', '') ];
is req(GET => '/exchange-status')->{status}, 401, 'the status page asks for the password';
is req(GET => '/exchange-status', headers => [$auth])->{status}, 200,
    '... and opens with the one made with openssl';

# ------------------------------------------------------------ 7. ejection
my $ok = 0;
for my $i (1 .. 12) {
    $ok++ if (req(GET => '/owa/', signed_in => "user$i")->{status} // 0) == 200;
}
is $ok, 12, 'every signed-in OWA request answered 200: the failures were retried';

my $log = "$etc/logs/error.log";
ok wait_until(sub { -f $log && slurp($log) =~ /\[warn\] .*exchange_health: upstream "exchange" server \S+ \(EXCH2\) ejected for owa/ },
              timeout => 5),
    'the ejection of EXCH2, at warn in the error log' or diag -f $log ? slurp($log) : 'no log';

my $j = eval { JSON::PP->new->utf8->decode(
    req(GET => '/exchange-status?format=json', headers => [$auth])->{body} // '') };
my ($s) = grep { ($_->{name} // '') eq 'EXCH2' } @{ $j->{upstreams}[0]{servers} || [] };
is $s && $s->{protocols}{owa}{state}, 'ejected', 'the status page: EXCH2 ejected for owa';
is $j && $j->{failing}, 1, '... one server failing';
like req(GET => '/exchange-status', headers => [$auth])->{body} // '',
    qr{EXCH2.*?badge bad">ejected</span>}s, '... and so says the HTML page';

done_testing;
