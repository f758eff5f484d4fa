package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

func (a *app) clusterCmd() *cobra.Command {
	cmd := groupCmd("cluster", "Inspect the cluster's nodes; back up and restore its metadata")
	cmd.AddCommand(a.backupCmds()...)
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "Show every node's role, term and log indexes, and where objects are stored",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				st, err := cl.ClusterStatus(ctx)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), st)
				}
				return printClusterStatus(cmd.OutOrStdout(), st)
			})
		},
	})
	a.addClusterMembershipCmds(cmd)
	return cmd
}

func (a *app) databaseCmd() *cobra.Command {
	cmd := groupCmd("database", "Create, list and drop databases")

	var props []string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a database",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			properties, err := keyValues("property", props)
			if err != nil {
				return err
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				db, err := cl.CreateDatabase(ctx, client.NewCreateDatabaseOption(args[0]).WithProperties(properties))
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.CreateDatabaseResponse{Database: db})
				}
				return printDatabases(cmd.OutOrStdout(), []*snapkeepv1.Database{db})
			})
		},
	}
	create.Flags().StringArrayVar(&props, "property", nil, "a database property `key=value` (repeatable)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the databases",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				dbs, err := cl.ListDatabases(ctx)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.ListDatabasesResponse{Databases: dbs})
				}
				return printDatabases(cmd.OutOrStdout(), dbs)
			})
		},
	}

	drop := &cobra.Command{
		Use:   "drop NAME",
		Short: "Drop a database that has no live collections",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				if err := cl.DropDatabase(ctx, client.NewDropDatabaseOption(args[0])); err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.DropDatabaseResponse{})
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "Dropped database %q.\n", args[0])
				return err
			})
		},
	}
	cmd.AddCommand(create, list, drop)
	return cmd
}

// collectionResponse is a write's response that carries the collection.
type collectionResponse interface {
	proto.Message
	GetCollection() *snapkeepv1.Collection
}

// printCollectionResult prints a collection that a write returned: the response as
// JSON, or the collection in detail.
func (a *app) printCollectionResult(cmd *cobra.Command, resp collectionResponse) error {
	if a.json() {
		return writeJSON(cmd.OutOrStdout(), resp)
	}
	return printCollection(cmd.OutOrStdout(), resp.GetCollection(), nil)
}

func (a *app) collectionCmd() *cobra.Command {
	cmd := groupCmd("collection", "Create, list, describe, alter and drop collections")
	var database string
	addDatabaseFlag := func(c *cobra.Command) {
		c.Flags().StringVar(&database, "database", "", "the collection's database (default \"default\")")
	}

	var partitions, props []string
	var description, schemaFile, keyLayout string
	var verifyOnFlush bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a collection (with a \"_default\" partition and any given with --partition)",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			properties, err := keyValues("property", props)
			if err != nil {
				return err
			}
			l, err := parseKeyLayout(keyLayout)
			if err != nil {
				return err
			}
			opt := client.NewCreateCollectionOption(args[0]).WithDatabase(database).
				WithPartitions(partitions...).WithProperties(properties).WithDescription(description).WithLayout(l)
			if verifyOnFlush {
				opt.WithVerifyOnFlush()
			}
			if schemaFile != "" {
				schema, err := os.ReadFile(schemaFile)
				if err != nil {
					return fmt.Errorf("read the schema: %w", err)
				}
				opt.WithSchema(schema)
			}
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				coll, err := cl.CreateCollection(ctx, opt)
				if err != nil {
					return err
				}
				resp := &snapkeepv1.CreateCollectionResponse{Collection: coll}
				return a.printCollectionResult(cmd, resp)
			})
		},
	}
	addDatabaseFlag(create)
	create.Flags().StringArrayVar(&partitions, "partition", nil, "a partition to create besides \"_default\" (repeatable)")
	create.Flags().StringArrayVar(&props, "property", nil, "a collection property `key=value` (repeatable)")
	create.Flags().StringVar(&description, "description", "", "free-text description")
	create.Flags().StringVar(&schemaFile, "schema-file", "", "file holding the schema (opaque bytes, at most 1 MiB)")
	create.Flags().BoolVar(&verifyOnFlush, "verify-on-flush", false, "check every flush's files (existence and size) against a listing of the bucket before accepting it")
	create.Flags().StringVar(&keyLayout, "layout", "snapkeep", "where the collection's files sit: snapkeep (collections/<id>/segments/<id>/...) or milvus (Milvus's insert_log/, delta_log/, index_files/... keys); fixed for the collection's life")

	var withSchemas bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the live collections of a database (every page; schemas only with --schema)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				opt := client.NewListCollectionsOption().WithDatabase(database)
				if withSchemas {
					opt.WithSchema()
				}
				colls, err := cl.ListCollections(ctx, opt)
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.ListCollectionsResponse{Collections: colls})
				}
				return printCollections(cmd.OutOrStdout(), colls)
			})
		},
	}
	addDatabaseFlag(list)
	list.Flags().BoolVar(&withSchemas, "schema", false, "include each collection's schema (with --output json)")

	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a collection: properties, partitions, indexes and a summary of its segments",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				resp, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(args[0]).WithDatabase(database))
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), resp)
				}
				return printCollection(cmd.OutOrStdout(), resp.GetCollection(), resp.GetSegments())
			})
		},
	}
	addDatabaseFlag(describe)

	drop := &cobra.Command{
		Use:   "drop NAME",
		Short: "Drop a collection and mark its segments dropped",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				coll, err := cl.DropCollection(ctx, client.NewDropCollectionOption(args[0]).WithDatabase(database))
				if err != nil {
					return err
				}
				if a.json() {
					return writeJSON(cmd.OutOrStdout(), &snapkeepv1.DropCollectionResponse{Collection: coll})
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "Dropped collection %q (id %d) of database %q.\n", coll.GetName(), coll.GetId(), coll.GetDatabase())
				return err
			})
		},
	}
	addDatabaseFlag(drop)

	var set, unset []string
	alter := &cobra.Command{
		Use:   "alter NAME",
		Short: "Set and delete collection properties",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(set) == 0 && len(unset) == 0 {
				return usageErrorf("nothing to change: give --set key=value or --unset key")
			}
			properties, err := keyValues("set", set)
			if err != nil {
				return err
			}
			opt := client.NewAlterCollectionOption(args[0]).WithDatabase(database).WithProperties(properties).WithDeleteProperty(unset...)
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				coll, err := cl.AlterCollection(ctx, opt)
				if err != nil {
					return err
				}
				resp := &snapkeepv1.AlterCollectionResponse{Collection: coll}
				return a.printCollectionResult(cmd, resp)
			})
		},
	}
	addDatabaseFlag(alter)
	alter.Flags().StringArrayVar(&set, "set", nil, "set property `key=value` (repeatable)")
	alter.Flags().StringArrayVar(&unset, "unset", nil, "delete property `key` (repeatable)")

	cmd.AddCommand(create, list, describe, alter, drop, a.adoptCmd())
	return cmd
}

func (a *app) partitionCmd() *cobra.Command {
	cmd := groupCmd("partition", "Create and drop partitions")
	var database string

	create := &cobra.Command{
		Use:   "create COLLECTION NAME",
		Short: "Add a partition to a collection",
		Args:  exactArgs("COLLECTION", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				coll, err := cl.CreatePartition(ctx, client.NewCreatePartitionOption(args[0], args[1]).WithDatabase(database))
				if err != nil {
					return err
				}
				resp := &snapkeepv1.CreatePartitionResponse{Collection: coll}
				return a.printCollectionResult(cmd, resp)
			})
		},
	}
	drop := &cobra.Command{
		Use:   "drop COLLECTION NAME",
		Short: "Remove a partition (never \"_default\") and drop its segments",
		Args:  exactArgs("COLLECTION", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				coll, err := cl.DropPartition(ctx, client.NewDropPartitionOption(args[0], args[1]).WithDatabase(database))
				if err != nil {
					return err
				}
				resp := &snapkeepv1.DropPartitionResponse{Collection: coll}
				return a.printCollectionResult(cmd, resp)
			})
		},
	}
	for _, c := range []*cobra.Command{create, drop} {
		c.Flags().StringVar(&database, "database", "", "the collection's database (default \"default\")")
	}
	cmd.AddCommand(create, drop)
	return cmd
}

func (a *app) indexCmd() *cobra.Command {
	cmd := groupCmd("index", "Create and drop index definitions")
	var database string
	var fieldID int64
	var params []string

	create := &cobra.Command{
		Use:   "create COLLECTION NAME --field ID",
		Short: "Define an index on a schema field",
		Args:  exactArgs("COLLECTION", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !flagChanged(cmd.Flags(), "field") {
				return usageErrorf("--field is required: the id of the schema field to index")
			}
			indexParams, err := keyValues("param", params)
			if err != nil {
				return err
			}
			opt := client.NewCreateIndexOption(args[0], args[1], fieldID).WithDatabase(database).WithParams(indexParams)
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				coll, err := cl.CreateIndex(ctx, opt)
				if err != nil {
					return err
				}
				resp := &snapkeepv1.CreateIndexResponse{Collection: coll}
				return a.printCollectionResult(cmd, resp)
			})
		},
	}
	create.Flags().Int64Var(&fieldID, "field", 0, "`ID` of the schema field the index is built on (required)")
	create.Flags().StringArrayVar(&params, "param", nil, "an index parameter `key=value`, e.g. index_type=HNSW (repeatable)")

	drop := &cobra.Command{
		Use:   "drop COLLECTION NAME",
		Short: "Remove an index definition and drop the segments' builds of it",
		Args:  exactArgs("COLLECTION", "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd, true, func(ctx context.Context, cl *client.Client) error {
				coll, err := cl.DropIndex(ctx, client.NewDropIndexOption(args[0], args[1]).WithDatabase(database))
				if err != nil {
					return err
				}
				resp := &snapkeepv1.DropIndexResponse{Collection: coll}
				return a.printCollectionResult(cmd, resp)
			})
		},
	}
	for _, c := range []*cobra.Command{create, drop} {
		c.Flags().StringVar(&database, "database", "", "the collection's database (default \"default\")")
	}
	cmd.AddCommand(create, drop)
	return cmd
}

// parseKeyLayout reads --layout.
func parseKeyLayout(name string) (snapkeepv1.KeyLayout, error) {
	switch strings.ToLower(name) {
	case "", "snapkeep":
		return snapkeepv1.KeyLayout_KEY_LAYOUT_SNAPKEEP, nil
	case "milvus":
		return snapkeepv1.KeyLayout_KEY_LAYOUT_MILVUS, nil
	}
	return 0, usageErrorf("--layout %q: use snapkeep or milvus", name)
}

// isDropped: describe shows a dropped collection (until GC removes its record); for
// "does it exist" it does not.
func isDropped(c *snapkeepv1.Collection) bool {
	return c.GetState() == snapkeepv1.CollectionState_COLLECTION_STATE_DROPPED
}
