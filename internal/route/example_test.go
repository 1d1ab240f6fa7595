package route_test

import (
	"errors"
	"fmt"

	"github.com/vigil-authz/vigil/internal/route"
)

func ExampleTable_Match() {
	tbl, err := route.Compile(route.Config{Routes: []route.Route{
		{Method: route.Methods{"GET"}, Path: "/todos/{id}", Resource: route.Resource{Type: "Todo", ID: "{id}"}},
		{Method: route.Methods{"POST"}, Path: "/todos", Action: "createTodo"},
	}}, nil)
	if err != nil {
		panic(err)
	}

	m, _ := tbl.Match("GET", "/todos/%41")
	fmt.Println(m.Action, m.Resource, m.Params["id"])

	m, _ = tbl.Match("POST", "/todos")
	fmt.Println(m.Action, m.Resource)

	_, err = tbl.Match("GET", "/todos/..%2Fadmin")
	fmt.Println(errors.Is(err, route.ErrBadRequest), err)

	_, err = tbl.Match("DELETE", "/todos/1")
	fmt.Println(errors.Is(err, route.ErrNoRoute), err)
	// Output:
	// Action::"GET /todos/{id}" Todo::"A" A
	// Action::"createTodo" Route::"/todos"
	// true route: path segment 1: percent-encoded slash ("%2F")
	// true route: no DELETE route for this path (allowed: GET, HEAD)
}
